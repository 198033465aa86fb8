/**
 * The flows the event bench measures (bench/harness/events-bench.ts): fastagentic's EventBus with
 * its handlers in the bench's process or, as services run, each group's member in a process of its
 * own (bench/events-member.ts); Moleculer's event emit over NATS; and the raw clients.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import { connect as amqpConnect } from "amqplib";
import { EventBus, silentLogger, type Transport, transportFromUrl } from "fastagentic";
import moleculer from "moleculer";
import type { MemberReport, MemberSpec } from "../events-member.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface Flow {
  /** Publishes one event (resolves once stored, or sent for non-durable). */
  publish(n: number): Promise<void>;
  /** Resolves once `count` events reached the handler(s) (per group for fan-out). */
  handled(count: number): Promise<void>;
  /** CPU µs so far of the member processes (undefined: the handlers run in this process). */
  membersCpuUs(): number | undefined;
  close(): Promise<void>;
}

const encoder = new TextEncoder();
export const payload = (n: number) => ({ orderId: `o-${n}`, total: n, items: [{ sku: "a", qty: 1 }] });

/** Waits on a counter without polling: resolves when it reaches a target. */
class Counter {
  value = 0;
  private waiters: Array<{ target: number; resolve: () => void }> = [];
  /** Sets the count reported by another process. */
  set(value: number): void {
    if (value <= this.value) return;
    this.value = value;
    this.wake();
  }
  add(): void {
    this.value++;
    if (this.waiters.length > 0) this.wake();
  }
  private wake(): void {
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

const cleanupOf = (url: string) =>
  url.startsWith("nats") ? { streamsOnClose: "delete" as const } : { deleteOnClose: true };

// ---- fastagentic ----------------------------------------------------------------------------

/** Publisher and every group's handler in this process. */
export async function faFlow(url: string, ns: string, groups: number, durable: boolean): Promise<Flow> {
  const transport: Transport = transportFromUrl(url, { namespace: ns, ...cleanupOf(url) });
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
  const options = durable ? {} : { durable: false };
  return {
    publish: async (n) => {
      await bus.publish("bench.order", payload(n), options);
    },
    handled: async (count) => {
      await Promise.all(counters.map((c) => c.reach(count)));
    },
    membersCpuUs: () => undefined,
    close: async () => {
      await bus.close();
      await transport.close();
    },
  };
}

/** Member processes, one per group, each counting what reaches its handler. */
export class Members {
  readonly counters: Counter[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly cpu: number[] = [];

  async start(kind: MemberSpec["kind"], url: string, ns: string, groups: string[]): Promise<void> {
    // BENCH_PROFILE_DIR=dir: each member process writes a V8 CPU profile there when it stops.
    const profileDir = process.env["BENCH_PROFILE_DIR"];
    const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
    for (const [i, group] of groups.entries()) {
      const counter = new Counter();
      this.counters.push(counter);
      this.cpu.push(0);
      const spec: MemberSpec = { kind, url, namespace: ns, group };
      const child = spawn(process.execPath, [...profile, "--import", "tsx", "bench/events-member.ts"], {
        cwd: ROOT,
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        env: { ...process.env, BENCH_EVENTS_MEMBER: JSON.stringify(spec) },
      });
      this.children.push(child);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("event member not ready within 30 s")), 30_000);
        child.on("message", (m: MemberReport) => {
          if (m.type === "ready") {
            clearTimeout(timer);
            resolve();
          } else if (m.type === "count") {
            this.cpu[i] = m.cpuUs ?? 0;
            counter.set(m.count ?? 0);
          }
        });
        child.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`event member exited (${code})`));
        });
      });
    }
  }

  handled(count: number): Promise<unknown> {
    return Promise.all(this.counters.map((c) => c.reach(count)));
  }

  cpuUs(): number {
    return this.cpu.reduce((a, b) => a + b, 0);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(async (child) => {
        if (child.exitCode !== null) return;
        const exited = new Promise((r) => child.once("exit", r));
        if (child.connected) child.disconnect();
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        child.kill("SIGKILL");
      }),
    );
  }
}

/** The publisher in this process, every group's member in a process of its own (as services are). */
export async function faProcessesFlow(
  url: string,
  ns: string,
  groups: number,
  durable: boolean,
): Promise<Flow> {
  const transport: Transport = transportFromUrl(url, { namespace: ns, ...cleanupOf(url) });
  const bus = new EventBus({ transport, logger: silentLogger });
  const members = new Members();
  try {
    // Connect first: the event streams exist before the members create their groups.
    if (durable) await bus.groups();
    const names = Array.from({ length: groups }, (_, g) => (durable ? `g${g}` : `live${g}`));
    await members.start(durable ? "fa" : "fa-live", url, ns, names);
  } catch (error) {
    await members.stop();
    await transport.close();
    throw error;
  }
  const options = durable ? {} : { durable: false };
  return {
    publish: async (n) => {
      await bus.publish("bench.order", payload(n), options);
    },
    handled: async (count) => {
      await members.handled(count);
    },
    membersCpuUs: () => members.cpuUs(),
    close: async () => {
      await members.stop();
      await bus.close();
      await transport.close();
    },
  };
}

/**
 * Moleculer 0.14's event emit over its NATS transporter (JSON serializer, built-in balancer):
 * a ServiceBroker here emits, a service on another node, in a process of its own, handles.
 */
export async function moleculerFlow(url: string, ns: string): Promise<Flow> {
  const members = new Members();
  const broker = new moleculer.ServiceBroker({
    namespace: ns,
    nodeID: `bench-publisher-${process.pid}`,
    transporter: url,
    logger: false,
  });
  try {
    await members.start("moleculer", url, ns, ["svc"]);
    await broker.start();
    await broker.waitForServices("svc", 30_000);
  } catch (error) {
    await members.stop();
    await broker.stop().catch(() => {});
    throw error;
  }
  return {
    publish: async (n) => {
      await broker.emit("bench.order", payload(n));
    },
    handled: async (count) => {
      await members.handled(count);
    },
    membersCpuUs: () => members.cpuUs(),
    close: async () => {
      await members.stop();
      await broker.stop();
    },
  };
}

// ---- raw clients ----------------------------------------------------------------------------

export async function rawJetStreamFlow(url: string, ns: string): Promise<Flow> {
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
    membersCpuUs: () => undefined,
    close: async () => {
      messages.stop();
      await loop.catch(() => {});
      await jsm.streams.delete(stream).catch(() => {});
      await nc.close();
    },
  };
}

/** For reference: a JSON packet published on core NATS to one queue subscriber, in this process. */
export async function rawCoreNatsFlow(url: string, ns: string): Promise<Flow> {
  const nc = await natsConnect({ servers: url.replace(/^nats:\/\//, "") });
  const counter = new Counter();
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
    membersCpuUs: () => undefined,
    close: () => nc.close(),
  };
}

export async function rawAmqpFlow(url: string, ns: string): Promise<Flow> {
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
    membersCpuUs: () => undefined,
    close: async () => {
      await pub.deleteQueue(queue).catch(() => {});
      await pub.deleteExchange(exchange).catch(() => {});
      await conn.close();
    },
  };
}
