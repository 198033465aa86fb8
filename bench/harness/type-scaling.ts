/**
 * Cost per task against the variety of work (issue 20, items 4 and 4b): one worker serving 1, 20,
 * 100, 300 task types (then 300 types with 6 tags), on NATS and RabbitMQ. First, one count at a
 * time: the worker's start time (`await worker.start()`: connect, declare, consume), the idle CPU
 * of this process (client + worker) and of the broker over 2 s, and the broker objects of its
 * namespace (NATS streams and consumers, RabbitMQ queues and consumers). Then every count up at
 * once: 200 one-at-a-time submits each cycling over its types (after as many unmeasured ones), in
 * blocks of 20 alternating between the counts, for the p50/p99. Producer and worker share this
 * process, each with a connection of its own; every count runs in a namespace of its own, deleted
 * at the end. Uses only the public API, so the same file measures any version.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Coordinator, silentLogger, transportFromUrl, Worker } from "fastagentic";
import type { TargetResult } from "../report/bench-results.js";
import { target } from "../report/targets.js";
import { brokerCpuMs } from "./broker-cpu.js";

const run = promisify(execFile);

export interface TypeScalingRow {
  types: number;
  tags: number;
  status: "ok" | "unavailable" | "failed";
  reason?: string;
  startMs?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** CPU of this process (client + worker) while idle, % of one core. */
  idleClientCpuPct?: number;
  /** CPU of the broker while idle, % of one core (other users of the broker included). */
  idleBrokerCpuPct?: number;
  /** NATS: streams; RabbitMQ: queues (of this namespace, while the worker runs). */
  brokerQueues?: number;
  /** NATS: JetStream consumers; RabbitMQ: consumers on those queues. */
  brokerConsumers?: number;
}

export interface TypeScalingResult {
  broker: "nats" | "amqp";
  rows: TypeScalingRow[];
}

export interface TypeScalingOptions {
  natsUrl: string;
  amqpUrl: string;
  runId: string;
  counts: readonly number[];
  /** Also 300 (the last count) types with this many tags on the worker, and tagged tasks. */
  tags: number;
  submits: number;
  brokers?: ReadonlyArray<"nats" | "amqp">;
}

const IDLE_MS = 2000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number;
}

async function natsObjects(url: string, ns: string): Promise<{ queues: number; consumers: number }> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: url.replace(/^nats:\/\//, "") });
  try {
    const jsm = await jetstreamManager(nc);
    let queues = 0;
    let consumers = 0;
    for await (const s of jsm.streams.list()) {
      if (!s.config.name.startsWith(`${ns}_`)) continue;
      queues++;
      consumers += s.state.consumer_count;
    }
    return { queues, consumers };
  } finally {
    await nc.close();
  }
}

async function amqpObjects(ns: string): Promise<{ queues: number; consumers: number }> {
  const { stdout } = await run("rabbitmqctl", ["-q", "list_queues", "name", "consumers"], {
    timeout: 30_000,
  });
  let queues = 0;
  let consumers = 0;
  for (const line of stdout.split("\n")) {
    const [name, n] = line.trim().split(/\s+/);
    if (!name?.startsWith(`${ns}.`) && !name?.startsWith(`${ns}:`)) continue;
    queues++;
    consumers += Number(n) || 0;
  }
  return { queues, consumers };
}

function transportOf(broker: "nats" | "amqp", o: TypeScalingOptions, namespace: string) {
  return broker === "nats"
    ? transportFromUrl(o.natsUrl, { namespace, streamsOnClose: "delete" })
    : transportFromUrl(o.amqpUrl, { namespace, deleteOnClose: true });
}

interface Setup {
  ns: string;
  types: number;
  tags: string[];
  names: string[];
  worker: Worker;
  client: Coordinator;
  close(): Promise<void>;
}

/** One worker serving `types` types (and `tagCount` tags) and a client, in a namespace of their own. */
async function setUp(
  broker: "nats" | "amqp",
  o: TypeScalingOptions,
  types: number,
  tagCount: number,
  pass: string,
): Promise<Setup & { startMs: number }> {
  const ns = `bts-${o.runId}${pass}-${broker[0]}${types}t${tagCount}`;
  const tags = Array.from({ length: tagCount }, (_, i) => `tag${i}`);
  const names = Array.from({ length: types }, (_, i) => `type-${i}`);
  const workerTransport = transportOf(broker, o, ns);
  const clientTransport = transportOf(broker, o, ns);
  const worker = new Worker({
    transport: workerTransport,
    logger: silentLogger,
    config: { maxConcurrentTasks: 16, tags },
  });
  for (const name of names) worker.handler(name, async (x: number) => x * 2);
  const client = new Coordinator({
    transport: clientTransport,
    logger: silentLogger,
    taskTypes: "any",
    config: { minWorkers: 0, autoScale: false },
  });
  const close = async () => {
    await worker.stop({ graceful: false }).catch(() => {});
    await client.stop().catch(() => {});
    await workerTransport.close().catch(() => {});
    await clientTransport.close().catch(() => {});
  };
  try {
    await client.start();
    const t0 = performance.now();
    await worker.start();
    const startMs = performance.now() - t0;
    return { ns, types, tags, names, worker, client, close, startMs };
  } catch (error) {
    await close();
    throw error;
  }
}

/** One-at-a-time submits cycling over the setup's types (tagged tasks carry one of its tags, half of them). */
async function submits(s: Setup, from: number, n: number, times?: number[]): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const t0 = performance.now();
    const r = await s.client.submit(s.names[i % s.types] as string, i, {
      ...(s.tags.length > 0 && i % 2 === 0 ? { tags: [s.tags[(i >> 1) % s.tags.length] as string] } : {}),
    });
    times?.push(performance.now() - t0);
    if (r !== i * 2) throw new Error(`wrong result ${String(r)} for ${i}`);
  }
}

/** Pass A, one setup at a time: start time, idle CPU, broker objects. */
async function measureAlone(
  broker: "nats" | "amqp",
  o: TypeScalingOptions,
  types: number,
  tagCount: number,
): Promise<TypeScalingRow> {
  const row: TypeScalingRow = { types, tags: tagCount, status: "ok" };
  let s: (Setup & { startMs: number }) | undefined;
  try {
    s = await setUp(broker, o, types, tagCount, "a");
    row.startMs = s.startMs;
    await submits(s, 0, 50);
    const cpu0 = process.cpuUsage();
    const broker0 = brokerCpuMs(broker);
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const wall = performance.now() - w0;
    const cpu = process.cpuUsage(cpu0);
    row.idleClientCpuPct = ((cpu.user + cpu.system) / 1000 / wall) * 100;
    const broker1 = brokerCpuMs(broker);
    // A broker process that ended meanwhile (RabbitMQ's helpers) makes the difference meaningless.
    if (broker0 !== undefined && broker1 !== undefined && broker1 >= broker0)
      row.idleBrokerCpuPct = ((broker1 - broker0) / wall) * 100;
    const objects = broker === "nats" ? await natsObjects(o.natsUrl, s.ns) : await amqpObjects(s.ns);
    row.brokerQueues = objects.queues;
    row.brokerConsumers = objects.consumers;
    return row;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { ...row, status: s ? "failed" : "unavailable", reason };
  } finally {
    await s?.close();
  }
}

/**
 * Pass B, every setup up at once: the p50 from blocks of one-at-a-time submits alternating between
 * them (a slow spell of this shared machine falls on all of them alike).
 */
async function measureInterleaved(
  broker: "nats" | "amqp",
  o: TypeScalingOptions,
  plan: ReadonlyArray<[number, number]>,
  rows: TypeScalingRow[],
): Promise<void> {
  const setups: Setup[] = [];
  try {
    for (const [types, tags] of plan) setups.push(await setUp(broker, o, types, tags, "b"));
    for (const s of setups) await submits(s, 0, o.submits); // warm-up, not measured
    const times: number[][] = setups.map(() => []);
    const block = 20;
    for (let done = 0; done < o.submits; done += block) {
      const order = (done / block) % 2 === 0 ? setups.map((_, k) => k) : setups.map((_, k) => k).reverse();
      for (const k of order)
        await submits(setups[k] as Setup, done, Math.min(block, o.submits - done), times[k]);
    }
    times.forEach((t, k) => {
      t.sort((a, b) => a - b);
      const row = rows[k] as TypeScalingRow;
      row.p50Ms = percentile(t, 50);
      row.p99Ms = percentile(t, 99);
    });
  } catch (error) {
    for (const row of rows)
      if (row.status === "ok") Object.assign(row, { status: "failed", reason: String(error) });
  } finally {
    for (const s of setups) await s.close();
  }
}

export async function measureTypeScaling(
  o: TypeScalingOptions,
  log: (line: string) => void,
): Promise<TypeScalingResult[]> {
  const out: TypeScalingResult[] = [];
  for (const broker of o.brokers ?? (["nats", "amqp"] as const)) {
    const result: TypeScalingResult = { broker, rows: [] };
    const plan: Array<[number, number]> = o.counts.map((n) => [n, 0]);
    if (o.tags > 0) plan.push([o.counts.at(-1) as number, o.tags]);
    // Not reported: warms this process's JIT and the broker's connections, which the first
    // measured count would otherwise pay for alone.
    log(`type scaling: ${broker}, warm-up …`);
    const warm = await measureAlone(broker, { ...o, runId: `${o.runId}w` }, 1, 0);
    if (warm.status === "unavailable") {
      out.push({ broker, rows: [warm] });
      continue;
    }
    for (const [types, tags] of plan) {
      log(`type scaling: ${broker}, one worker serving ${types} type(s)${tags ? ` and ${tags} tags` : ""} …`);
      const row = await measureAlone(broker, o, types, tags);
      result.rows.push(row);
      log(
        row.status === "ok"
          ? `  start ${row.startMs?.toFixed(0)} ms, ${row.brokerQueues} queues/streams, ${row.brokerConsumers} consumers`
          : `  ${row.status}: ${row.reason}`,
      );
    }
    if (result.rows.every((r) => r.status === "ok")) {
      log(`type scaling: ${broker}, latency of every count, in alternating blocks …`);
      await measureInterleaved(broker, o, plan, result.rows);
      log(`  p50 ${result.rows.map((r) => `${r.types}/${r.tags}: ${r.p50Ms?.toFixed(2)} ms`).join(", ")}`);
    }
    out.push(result);
  }
  return out;
}

/** The table lines, and the p50 ratio of the largest count (and of the tagged run) over 1 type. */
export function typeScalingLines(results: readonly TypeScalingResult[]): string[] {
  const lines = [
    "Type scaling (one worker, one-at-a-time submits over its types, 200 per count; 100 with --quick):",
  ];
  lines.push(
    "  broker  types tags   start ms   p50 ms   p99 ms   p50/1type  idle cpu client/broker %  queues/streams  consumers",
  );
  for (const r of results) {
    const base = r.rows.find((x) => x.types === 1 && x.tags === 0)?.p50Ms;
    for (const x of r.rows) {
      if (x.status !== "ok") {
        lines.push(
          `  ${r.broker.padEnd(6)} ${String(x.types).padStart(6)} ${String(x.tags).padStart(4)}   ${x.status}: ${x.reason}`,
        );
        continue;
      }
      const ratio = base && x.p50Ms ? (x.p50Ms / base).toFixed(2) : "-";
      lines.push(
        `  ${r.broker.padEnd(6)} ${String(x.types).padStart(6)} ${String(x.tags).padStart(4)} ${(x.startMs ?? 0).toFixed(0).padStart(10)} ${(x.p50Ms ?? 0).toFixed(2).padStart(8)} ${(x.p99Ms ?? 0).toFixed(2).padStart(8)} ${ratio.padStart(11)} ${`${(x.idleClientCpuPct ?? 0).toFixed(1)} / ${x.idleBrokerCpuPct === undefined ? "?" : x.idleBrokerCpuPct.toFixed(1)}`.padStart(27)} ${String(x.brokerQueues).padStart(15)} ${String(x.brokerConsumers).padStart(10)}`,
      );
    }
  }
  return lines;
}

/** Issue 20's targets: p50 at the largest count (and with tags) <= 1.3x p50 at 1 type; start <= 500 ms. */
export function typeScalingTargets(results: readonly TypeScalingResult[]): TargetResult[] {
  const out: TargetResult[] = [];
  for (const r of results) {
    const base = r.rows.find((x) => x.types === 1 && x.tags === 0);
    const largest = Math.max(...r.rows.map((x) => x.types));
    for (const x of r.rows.filter((row) => row.types === largest)) {
      const what = `${r.broker} ${x.types} types${x.tags ? ` + ${x.tags} tags` : ""}`;
      const ratio = base?.p50Ms && x.p50Ms ? x.p50Ms / base.p50Ms : undefined;
      out.push(target(`${what}: p50 / p50 at 1 type`, ratio, "<=", 1.3, "x", x.reason ?? "not measured"));
      out.push(target(`${what}: worker start`, x.startMs, "<=", 500, "ms", x.reason ?? "not measured"));
    }
  }
  return out;
}
