/**
 * The entities section of `npm run bench` (issue 18), all in one run:
 *  - in memory: entity events/s with state kept (a Worker and a Coordinator on one in-memory
 *    transport, in this process), and the cost per event with 1,000 and with 100,000 ids held;
 *  - on NATS (state in JetStream KV) and RabbitMQ (state in PostgreSQL): `send` throughput until
 *    every event is applied and its state stored, by a worker in another process, beside the raw
 *    work-queue round trip of the same run (bench/paths/*-raw.bench.ts); `ask` p50 beside the raw
 *    round trip's p50, both measured the way every path's latency is (round-trip.ts).
 */
import { loadavg } from "node:os";
import { Coordinator, InMemoryTransport, silentLogger, Worker } from "fastagentic";
import type { BenchConfig } from "../bench-config.js";
import type { BenchPath, PathSpec } from "../paths/bench-path.js";
import { within } from "../paths/bench-path.js";
import { Counter, type CounterRef, type EntityBroker, entityProducer } from "../paths/entities.bench.js";
import { pathById } from "../paths/path-registry.js";
import { measurePath } from "./round-trip.js";
import { startWorkers, stopWorkers, type WorkerChild } from "./worker-children.js";

export interface EntitiesRow {
  id: string;
  label: string;
  kind: "fastagentic" | "raw";
  broker: "memory" | EntityBroker;
  status: "ok" | "unavailable" | "failed";
  /** Entity events (or raw round trips) per second. */
  eventsPerSec?: number;
  /** Wall time per event (µs), for the ids-held comparison. */
  usPerEvent?: number;
  /**
   * In memory: this process's CPU per event (µs): on this shared machine, steadier than the wall
   * clock (1e6 / it is the rate one free core would give).
   */
  cpuUsPerEvent?: number;
  p50Ms?: number;
  reason?: string;
}

export interface EntitiesResults {
  /** Events per throughput phase (memory, brokers). */
  memoryEvents: number;
  brokerEvents: number;
  ids: number;
  window: number;
  rows: EntitiesRow[];
}

export interface EntitiesBenchOptions {
  config: BenchConfig;
  spec: (name: string) => PathSpec;
}

const IDS = 1000;
const MANY_IDS = 100_000;

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Polls `applied()` until it reaches `target` (bounded). */
async function waitApplied(applied: () => number | Promise<number>, target: number, guardMs: number) {
  const deadline = performance.now() + guardMs;
  for (;;) {
    const n = await applied();
    if (n >= target) return;
    if (performance.now() > deadline)
      throw new Error(`only ${n}/${target} events applied within ${guardMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Sends `events` ADDs round-robin over `refs`, `window` sends in flight; resolves when all are enqueued. */
async function sendAll(refs: readonly CounterRef[], events: number, window: number, offset = 0) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(window, events) }, async () => {
    while (next < events) {
      const i = next++;
      await (refs[i % refs.length] as CounterRef).send({ type: "ADD", x: offset + i });
    }
  });
  await Promise.all(lanes);
}

interface Phase {
  perSec: number;
  /** This process's CPU per event, µs. */
  cpuUs: number;
}

/** Sends `events` and waits until the holder applied (and stored) them all. */
async function sendPhase(
  refs: readonly CounterRef[],
  events: number,
  window: number,
  applied: () => number | Promise<number>,
  guardMs: number,
): Promise<Phase> {
  const before = await applied();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sendAll(refs, events, window);
  await waitApplied(applied, before + events, guardMs);
  const cpu = process.cpuUsage(cpu0);
  return { perSec: events / ((performance.now() - t0) / 1000), cpuUs: (cpu.user + cpu.system) / events };
}

/** Best of `rounds` phases: the highest rate, and the lowest CPU per event. */
async function bestOf(rounds: number, phase: () => Promise<Phase>): Promise<Phase> {
  let best: Phase = { perSec: 0, cpuUs: Number.POSITIVE_INFINITY };
  for (let r = 0; r < rounds; r++) {
    const p = await phase();
    best = { perSec: Math.max(best.perSec, p.perSec), cpuUs: Math.min(best.cpuUs, p.cpuUs) };
  }
  return best;
}

/** Reads every id back through `ask` and checks its count: no event lost or applied twice. */
async function checkCounts(refs: readonly CounterRef[], expected: (i: number) => number): Promise<void> {
  const step = refs.length > 2000 ? 50 : 1;
  const sample = refs.map((ref, i) => ({ ref, i })).filter(({ i }) => i % step === 0);
  await Promise.all(
    sample.map(async ({ ref, i }) => {
      const snap = await ref.get();
      if (snap?.context.n !== expected(i))
        throw new Error(`${ref.id} counted ${snap?.context.n}, expected ${expected(i)}`);
    }),
  );
}

interface MemoryRig {
  refs(count: number, prefix: string): CounterRef[];
  applied(): number;
  close(): Promise<void>;
}

async function memoryRig(): Promise<MemoryRig> {
  const transport = new InMemoryTransport();
  const worker = new Worker({ transport, logger: silentLogger });
  worker.register(Counter);
  await worker.start();
  const coordinator = new Coordinator({
    transport,
    config: { minWorkers: 0, autoScale: false },
    logger: silentLogger,
  });
  await coordinator.start();
  return {
    refs: (count, prefix) =>
      Array.from(
        { length: count },
        (_, i) => coordinator.entity(Counter, `${prefix}${i}`) as unknown as CounterRef,
      ),
    applied: () => worker.entityStats[0]?.applied ?? 0,
    async close() {
      await coordinator.stop({ graceful: false });
      await worker.stop({ graceful: false });
      await transport.close();
    },
  };
}

async function measureMemory(
  events: number,
  window: number,
  guardMs: number,
  log: (l: string) => void,
): Promise<EntitiesRow[]> {
  const rows: EntitiesRow[] = [];
  const row = (id: string, label: string): EntitiesRow => ({
    id,
    label,
    kind: "fastagentic",
    broker: "memory",
    status: "ok",
  });
  // Events/s with state kept, 1,000 ids: best of three (each well under a second of this shared machine).
  const send = row(
    "ent-mem-send",
    `in memory: send → applied, state kept (${IDS.toLocaleString("en-US")} ids)`,
  );
  rows.push(send);
  try {
    const rig = await memoryRig();
    try {
      const refs = rig.refs(IDS, "m-");
      await sendPhase(refs, events, window, rig.applied, guardMs); // warm-up: creates the ids, JIT
      const best = await bestOf(3, () => sendPhase(refs, events, window, rig.applied, guardMs));
      await checkCounts(refs, () => (4 * events) / IDS);
      send.eventsPerSec = best.perSec;
      send.cpuUsPerEvent = best.cpuUs;
    } finally {
      await rig.close();
    }
  } catch (error) {
    send.status = "failed";
    send.reason = message(error);
  }
  // CPU-bound in this one process: the wall rate is a core's share times 1e6 / (CPU per event), so
  // on a loaded machine it falls with the share (load 20 on 2 cores: a tenth), the CPU cost does not.
  log(
    `  ${send.label}: ${
      send.eventsPerSec && send.cpuUsPerEvent
        ? `${Math.round(send.eventsPerSec)} events/s, ${send.cpuUsPerEvent.toFixed(1)} µs CPU/event ` +
          `(${Math.round(1e6 / send.cpuUsPerEvent)}/s on a free core), load ${loadavg()[0]?.toFixed(1)}`
        : send.reason
    }`,
  );
  // Cost per event with 1,000 and with 100,000 ids held (all in memory, all stored), the same
  // events round-robin over them; each rig warmed (every id created) first, then best of two.
  for (const [id, count] of [
    ["ent-mem-1k", IDS],
    ["ent-mem-100k", MANY_IDS],
  ] as const) {
    const held = row(id, `in memory: cost per event, ${count.toLocaleString("en-US")} ids held`);
    rows.push(held);
    try {
      const rig = await memoryRig();
      try {
        const refs = rig.refs(count, "h-");
        const perRound = Math.max(events, 2 * MANY_IDS);
        await sendPhase(refs, count, window, rig.applied, guardMs); // every id created
        await sendPhase(refs, perRound, window, rig.applied, guardMs); // warm-up
        const best = await bestOf(2, () => sendPhase(refs, perRound, window, rig.applied, guardMs));
        await checkCounts(refs, () => 1 + (3 * perRound) / count);
        held.eventsPerSec = best.perSec;
        held.usPerEvent = 1e6 / best.perSec;
        held.cpuUsPerEvent = best.cpuUs;
      } finally {
        await rig.close();
      }
    } catch (error) {
      held.status = "failed";
      held.reason = message(error);
    }
    log(`  ${held.label}: ${held.usPerEvent ? `${held.usPerEvent.toFixed(2)} µs/event` : held.reason}`);
  }
  return rows;
}

/** `send` on a broker: a worker process holds the entities, this process sends. */
async function measureBrokerSend(
  broker: EntityBroker,
  spec: PathSpec,
  events: number,
  window: number,
  guardMs: number,
): Promise<EntitiesRow> {
  const path: BenchPath = pathById(broker === "nats" ? "ent-nats" : "ent-amqp");
  const row: EntitiesRow = {
    id: `ent-${broker}-send`,
    label:
      broker === "nats"
        ? "NATS: entity send → applied, state in JetStream KV"
        : "RabbitMQ: entity send → applied, state in PostgreSQL",
    kind: "fastagentic",
    broker,
    status: "ok",
  };
  try {
    await within(path.probe(spec), 10_000, "probe");
  } catch (error) {
    return { ...row, status: "unavailable", reason: message(error) };
  }
  let workers: WorkerChild[] = [];
  const producer = await entityProducer(broker, spec);
  try {
    workers = await startWorkers(path.id, spec, 1);
    const w = workers[0] as WorkerChild;
    const applied = () => w.started();
    const refs = Array.from({ length: IDS }, (_, i) => producer.ref(`s-${i}`));
    // Warm-up: every id created (its first write), connections and consumers up, the JIT.
    await sendPhase(refs, IDS, window, applied, guardMs);
    await sendPhase(refs, Math.min(events, 5 * IDS), window, applied, guardMs);
    row.eventsPerSec = (await sendPhase(refs, events, window, applied, guardMs)).perSec;
    await checkCounts(refs, () => 1 + Math.min(events, 5 * IDS) / IDS + events / IDS);
  } catch (error) {
    row.status = "failed";
    row.reason = message(error);
  } finally {
    await stopWorkers(workers);
    await producer.close();
  }
  return row;
}

export async function measureEntities(
  options: EntitiesBenchOptions,
  log: (line: string) => void,
): Promise<EntitiesResults> {
  const { config } = options;
  const memoryEvents = config.quick ? 20_000 : 100_000;
  const brokerEvents = config.tasks;
  const window = config.inflight;
  const results: EntitiesResults = { memoryEvents, brokerEvents, ids: IDS, window, rows: [] };
  log("entities in memory …");
  // In this process, on a shared machine: a slow spell must not fail a phase that takes seconds when calm.
  results.rows.push(...(await measureMemory(memoryEvents, window, 3 * config.phaseTimeoutMs, log)));
  for (const broker of ["nats", "amqp"] as const) {
    const rawId = broker === "nats" ? "raw-jetstream" : "raw-amqp";
    log(`entities on ${broker}: the raw work-queue round trip …`);
    const raw = await measurePath(pathById(rawId), options.spec(`ent-${rawId}`), config, {
      workerProcesses: 1,
      tasks: config.tasks,
      latency: true,
    });
    results.rows.push({
      id: `ent-${rawId}`,
      label: `${broker === "nats" ? "NATS" : "RabbitMQ"}: raw work-queue round trip (${raw.label})`,
      kind: "raw",
      broker,
      status: raw.status,
      ...(raw.tasksPerSec === undefined ? {} : { eventsPerSec: raw.tasksPerSec }),
      ...(raw.p50Ms === undefined ? {} : { p50Ms: raw.p50Ms }),
      ...(raw.reason === undefined ? {} : { reason: raw.reason }),
    });
    log(
      `  ${raw.status}: ${Math.round(raw.tasksPerSec ?? 0)}/s, p50 ${raw.p50Ms?.toFixed(2)} ms ${raw.reason ?? ""}`,
    );
    log(`entities on ${broker}: send …`);
    const send = await measureBrokerSend(
      broker,
      options.spec(`ent-${broker}-send`),
      brokerEvents,
      window,
      config.phaseTimeoutMs,
    );
    results.rows.push(send);
    log(`  ${send.status}: ${Math.round(send.eventsPerSec ?? 0)} events/s ${send.reason ?? ""}`);
    log(`entities on ${broker}: ask, one at a time …`);
    const ask = await measurePath(pathById(`ent-${broker}`), options.spec(`ent-${broker}-ask`), config, {
      workerProcesses: 1,
      tasks: config.tasks,
      latency: true,
    });
    results.rows.push({
      id: `ent-${broker}-ask`,
      label: `${broker === "nats" ? "NATS" : "RabbitMQ"}: entity ask (${IDS.toLocaleString("en-US")} ids)`,
      kind: "fastagentic",
      broker,
      status: ask.status,
      ...(ask.tasksPerSec === undefined ? {} : { eventsPerSec: ask.tasksPerSec }),
      ...(ask.p50Ms === undefined ? {} : { p50Ms: ask.p50Ms }),
      ...(ask.reason === undefined ? {} : { reason: ask.reason }),
    });
    log(
      `  ${ask.status}: ${Math.round(ask.tasksPerSec ?? 0)}/s, p50 ${ask.p50Ms?.toFixed(2)} ms ${ask.reason ?? ""}`,
    );
  }
  return results;
}
