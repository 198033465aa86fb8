/**
 * The event bus section of `npm run bench`: durable publish → one group's handler against the raw
 * clients doing the same in the same run (JetStream publish + durable pull consumer; amqplib
 * confirms + manual ack), fan-out to 3 groups, `durable: false` against a raw core-NATS
 * publish/queue-subscribe (the path Moleculer's event emit takes over NATS), and p50 of one event
 * publish → handler beside each raw client's. Publisher and handlers run in this process, on both
 * sides of each comparison.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import { connect as amqpConnect } from "amqplib";
import { EventBus, silentLogger, type Transport, transportFromUrl } from "fastagentic";

export interface EventsRow {
  id: string;
  label: string;
  kind: "fastagentic" | "raw";
  broker: "nats" | "amqp";
  status: "ok" | "unavailable" | "failed";
  eventsPerSec?: number;
  p50Ms?: number;
  reason?: string;
}

export interface EventsResults {
  events: number;
  window: number;
  rows: EventsRow[];
}

interface Flow {
  /** Publishes one event (resolves once stored, or sent for non-durable). */
  publish(n: number): Promise<void>;
  /** Resolves once `count` events reached the handler(s) (per group for fan-out). */
  handled(count: number): Promise<void>;
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const payload = (n: number) => ({ orderId: `o-${n}`, total: n, items: [{ sku: "a", qty: 1 }] });

/** Waits on a counter without polling: resolves when `count()` reaches `target`. */
class Counter {
  value = 0;
  /** Sets the count reported by another process. */
  set(value: number): void {
    while (this.value < value) this.add();
  }
  private waiters: Array<{ target: number; resolve: () => void }> = [];
  add(): void {
    this.value++;
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((w) => {
      if (this.value < w.target) return true;
      w.resolve();
      return false;
    });
  }
  reach(target: number, guardMs = 120_000): Promise<void> {
    if (this.value >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${this.value}/${target} events arrived`)),
        guardMs,
      );
      this.waiters.push({
        target,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

async function throughput(flow: Flow, events: number, window: number): Promise<number> {
  const started = performance.now();
  let next = 0;
  const lanes = Array.from({ length: window }, async () => {
    while (next < events) await flow.publish(next++);
  });
  await Promise.all(lanes);
  await flow.handled(events);
  return events / ((performance.now() - started) / 1000);
}

async function p50(flow: Flow, calls: number, offset: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await flow.publish(offset + i);
    await flow.handled(offset + i + 1);
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] as number;
}

// ---- fastagentic ----------------------------------------------------------------------------

async function faFlow(url: string, ns: string, groups: number, durable: boolean): Promise<Flow> {
  const cleanup = url.startsWith("nats") ? { streamsOnClose: "delete" } : { deleteOnClose: true };
  const transport: Transport = transportFromUrl(url, { namespace: ns, ...cleanup });
  const bus = new EventBus({ transport, logger: silentLogger });
  const counters: Counter[] = [];
  for (let g = 0; g < groups; g++) {
    const c = new Counter();
    counters.push(c);
    await bus.subscribe("bench.order", () => c.add(), {
      ...(durable ? { group: `g${g}` } : { durable: false, group: `live${g}` }),
      concurrency: 256,
      timeoutMs: 0,
    });
  }
  return {
    publish: async (n) => {
      await bus.publish("bench.order", payload(n), durable ? {} : { durable: false });
    },
    handled: async (count) => {
      await Promise.all(counters.map((c) => c.reach(count)));
    },
    close: async () => {
      await bus.close();
      await transport.close();
    },
  };
}

/** Every group's member in a process of its own (as services are): the fan-out measure. */
async function faProcessesFlow(url: string, ns: string, groups: number): Promise<Flow> {
  const cleanup = url.startsWith("nats") ? { streamsOnClose: "delete" } : { deleteOnClose: true };
  const transport: Transport = transportFromUrl(url, { namespace: ns, ...cleanup });
  const bus = new EventBus({ transport, logger: silentLogger });
  const counters: Counter[] = [];
  const children: ChildProcess[] = [];
  for (let g = 0; g < groups; g++) {
    const counter = new Counter();
    counters.push(counter);
    const child = spawn(process.execPath, ["--import", "tsx", "bench/events-member.ts"], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, BENCH_EVENTS_MEMBER: JSON.stringify({ url, namespace: ns, group: `g${g}` }) },
    });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("event member not ready within 30 s")), 30_000);
      child.on("message", (m: { type: string; count?: number }) => {
        if (m.type === "ready") {
          clearTimeout(timer);
          resolve();
        } else if (m.type === "count") counter.set(m.count ?? 0);
      });
      child.once("exit", (code) => reject(new Error(`event member exited (${code})`)));
    });
  }
  return {
    publish: async (n) => {
      await bus.publish("bench.order", payload(n));
    },
    handled: async (count) => {
      await Promise.all(counters.map((c) => c.reach(count)));
    },
    close: async () => {
      for (const child of children) {
        const exited = new Promise((r) => child.once("exit", r));
        child.disconnect();
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        child.kill("SIGKILL");
      }
      await bus.close();
      await transport.close();
    },
  };
}

// ---- raw clients ----------------------------------------------------------------------------

async function rawJetStreamFlow(url: string, ns: string): Promise<Flow> {
  const nc = await natsConnect({ servers: url.replace(/^nats:\/\//, "") });
  const jsm = await jetstreamManager(nc);
  const stream = `${ns}_raw`;
  await jsm.streams.add({
    name: stream,
    subjects: [`${ns}.raw.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
  });
  await jsm.consumers.add(stream, {
    durable_name: "g0",
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 10_000,
  });
  const js = jetstream(nc);
  const counter = new Counter();
  const messages = await (await js.consumers.get(stream, "g0")).consume({ max_messages: 256 });
  const loop = (async () => {
    for await (const m of messages) {
      JSON.parse(new TextDecoder().decode(m.data));
      counter.add();
      m.ack();
    }
  })();
  let id = 0;
  return {
    publish: async (n) => {
      await js.publish(`${ns}.raw.order`, encoder.encode(JSON.stringify(payload(n))), { msgID: `r-${++id}` });
    },
    handled: (count) => counter.reach(count),
    close: async () => {
      messages.stop();
      await loop.catch(() => {});
      await jsm.streams.delete(stream).catch(() => {});
      await nc.close();
    },
  };
}

async function rawCoreNatsFlow(url: string, ns: string): Promise<Flow> {
  const nc = await natsConnect({ servers: url.replace(/^nats:\/\//, "") });
  const counter = new Counter();
  // What Moleculer's emit does over NATS: a JSON packet published on a subject, one queue-group subscriber.
  nc.subscribe(`${ns}.EVENTB.svc.bench.order`, {
    queue: "svc",
    callback: (_err, m) => {
      JSON.parse(new TextDecoder().decode(m.data));
      counter.add();
    },
  });
  await nc.flush();
  return {
    publish: async (n) => {
      nc.publish(
        `${ns}.EVENTB.svc.bench.order`,
        encoder.encode(JSON.stringify({ ver: "4", sender: "api", event: "bench.order", data: payload(n) })),
      );
    },
    handled: (count) => counter.reach(count),
    close: () => nc.close(),
  };
}

async function rawAmqpFlow(url: string, ns: string): Promise<Flow> {
  const conn = await amqpConnect(url, { noDelay: true, timeout: 5000 });
  const pub = await conn.createConfirmChannel();
  const exchange = `${ns}:raw`;
  const queue = `${ns}:raw.g0`;
  await pub.assertExchange(exchange, "topic", { durable: true });
  await pub.assertQueue(queue, { durable: true, arguments: { "x-queue-version": 2 } });
  await pub.bindQueue(queue, exchange, "bench.#");
  const sub = await conn.createChannel();
  await sub.prefetch(256);
  const counter = new Counter();
  await sub.consume(queue, (m) => {
    if (!m) return;
    JSON.parse(m.content.toString());
    counter.add();
    sub.ack(m);
  });
  return {
    publish: (n) =>
      new Promise<void>((resolve, reject) =>
        pub.publish(
          exchange,
          "bench.order",
          Buffer.from(JSON.stringify(payload(n))),
          { persistent: true },
          (err) => (err ? reject(err) : resolve()),
        ),
      ),
    handled: (count) => counter.reach(count),
    close: async () => {
      await pub.deleteQueue(queue).catch(() => {});
      await pub.deleteExchange(exchange).catch(() => {});
      await conn.close();
    },
  };
}

// ---- the section --------------------------------------------------------------------------------

interface Spec {
  id: string;
  label: string;
  kind: EventsRow["kind"];
  broker: EventsRow["broker"];
  make(ns: string): Promise<Flow>;
  latency: boolean;
}

export async function measureEvents(
  options: {
    natsUrl: string;
    amqpUrl: string;
    events: number;
    window: number;
    latencyCalls: number;
    runId: string;
  },
  log: (line: string) => void,
): Promise<EventsResults> {
  const { natsUrl, amqpUrl } = options;
  const specs: Spec[] = [
    {
      id: "ev-fa-nats",
      label: "fastagentic events, NATS (durable, 1 group)",
      kind: "fastagentic",
      broker: "nats",
      make: (ns) => faFlow(natsUrl, ns, 1, true),
      latency: true,
    },
    {
      id: "ev-raw-jetstream",
      label: "raw JetStream publish + durable pull consumer",
      kind: "raw",
      broker: "nats",
      make: (ns) => rawJetStreamFlow(natsUrl, ns),
      latency: true,
    },
    {
      id: "ev-fa-nats-1p",
      label: "fastagentic events, NATS, 1 group in its own process",
      kind: "fastagentic",
      broker: "nats",
      make: (ns) => faProcessesFlow(natsUrl, ns, 1),
      latency: false,
    },
    {
      id: "ev-fa-nats-3p",
      label: "fastagentic events, NATS, 3 groups, a process each (per group)",
      kind: "fastagentic",
      broker: "nats",
      make: (ns) => faProcessesFlow(natsUrl, ns, 3),
      latency: false,
    },
    {
      id: "ev-fa-nats-live",
      label: "fastagentic events, NATS, durable: false",
      kind: "fastagentic",
      broker: "nats",
      make: (ns) => faFlow(natsUrl, ns, 1, false),
      latency: false,
    },
    {
      id: "ev-raw-nats-core",
      label: "raw core NATS publish / queue subscribe (Moleculer-style emit)",
      kind: "raw",
      broker: "nats",
      make: (ns) => rawCoreNatsFlow(natsUrl, ns),
      latency: false,
    },
    {
      id: "ev-fa-amqp",
      label: "fastagentic events, RabbitMQ (durable, 1 group)",
      kind: "fastagentic",
      broker: "amqp",
      make: (ns) => faFlow(amqpUrl, ns, 1, true),
      latency: true,
    },
    {
      id: "ev-raw-amqp",
      label: "raw amqplib (topic exchange, durable queue, confirms, manual ack)",
      kind: "raw",
      broker: "amqp",
      make: (ns) => rawAmqpFlow(amqpUrl, ns),
      latency: true,
    },
    {
      id: "ev-fa-amqp-1p",
      label: "fastagentic events, RabbitMQ, 1 group in its own process",
      kind: "fastagentic",
      broker: "amqp",
      make: (ns) => faProcessesFlow(amqpUrl, ns, 1),
      latency: false,
    },
    {
      id: "ev-fa-amqp-3p",
      label: "fastagentic events, RabbitMQ, 3 groups, a process each (per group)",
      kind: "fastagentic",
      broker: "amqp",
      make: (ns) => faProcessesFlow(amqpUrl, ns, 3),
      latency: false,
    },
  ];
  const rows: EventsRow[] = [];
  for (const spec of specs) {
    log(`events: ${spec.label} …`);
    const ns = `bev${options.runId}${spec.id.replace(/[^a-z0-9]/g, "")}`;
    let flow: Flow | undefined;
    try {
      flow = await spec.make(ns);
      // Warm up, then measure.
      await throughput(flow, Math.min(2000, options.events), options.window);
      const warm = Math.min(2000, options.events);
      const rate = await throughput(
        { ...flow, handled: (count) => flow!.handled(warm + count) },
        options.events,
        options.window,
      );
      const row: EventsRow = {
        id: spec.id,
        label: spec.label,
        kind: spec.kind,
        broker: spec.broker,
        status: "ok",
        eventsPerSec: rate,
      };
      if (spec.latency) {
        const base = warm + options.events;
        row.p50Ms = await p50(
          { ...flow, handled: (count) => flow!.handled(count) },
          options.latencyCalls,
          base,
        );
      }
      log(
        `  ${Math.round(rate)} events/s${row.p50Ms === undefined ? "" : `, p50 ${row.p50Ms.toFixed(2)} ms`}`,
      );
      rows.push(row);
    } catch (error) {
      const reason = (error as Error).message;
      log(`  failed: ${reason}`);
      rows.push({
        id: spec.id,
        label: spec.label,
        kind: spec.kind,
        broker: spec.broker,
        status: "failed",
        reason,
      });
    } finally {
      await flow?.close().catch(() => {});
    }
  }
  return { events: options.events, window: options.window, rows };
}
