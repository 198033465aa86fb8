/**
 * Faults on the shared nats-server: consumers that die or stop without settling, a handler longer
 * than AckWait, payloads over the limit, garbage on a task subject, and a CRITICAL task arriving
 * behind a backlog of LOW ones. Waits are on events; every wait is bounded by the hang guard.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import {
  Coordinator,
  type Delivery,
  deadLetterQueueOf,
  PayloadTooLargeError,
  TaskPriority,
  Worker,
  WorkerPool,
} from "fastagentic";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { NatsTransport } from "../../../transports/nats/index.js";
import { DEAD_LETTER_REASON_HEADER } from "../../../transports/transport.js";
import { Collector, deferred, HANG_GUARD_MS } from "../../helpers/async.js";
import { uniqueNamespace } from "../../helpers/brokers.js";
import { deleteNamespace, natsAvailable, natsServer, streamsOf, testTransport } from "./nats-helpers.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const HOLDER = fileURLToPath(new URL("./fixtures/hold-messages.ts", import.meta.url));

describe("NATS transport under faults", () => {
  let ok = false;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    ok = await natsAvailable();
  });

  afterEach(async () => {
    // Every cleanup runs, in reverse order (the namespace sweeps last), even when one fails.
    let failure: unknown;
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: unknown) => {
        failure ??= error;
      });
    }
    if (failure !== undefined) throw failure;
  });

  /** A transport of the test, closed (and its namespace swept) after it. */
  async function open(namespace: string, options: { ackWaitMs?: number } = {}): Promise<NatsTransport> {
    const t = new NatsTransport({ servers: [natsServer], namespace, ...options });
    cleanups.push(async () => {
      await t.close().catch(() => {});
      await deleteNamespace(namespace);
    });
    await t.connect();
    return t;
  }

  it("redelivers what a consumer held when its process is killed (kill -9, no nak)", async ({ skip }) => {
    if (!ok) skip();
    const namespace = uniqueNamespace("kill");
    const t = await open(namespace, { ackWaitMs: 1000 });
    for (const m of ["a", "b", "c"]) await t.enqueue("q.held", enc(m), { priority: 5 });
    const child = spawnHolder([natsServer, namespace, "q.held", "3", "1000"]);
    cleanups.push(async () => child.kill("SIGKILL"));
    await waitForLine(child, "held");
    expect(await t.depth("q.held")).toBe(0); // all three are out, unsettled
    child.kill("SIGKILL");

    const again = new Collector<Delivery>();
    await t.consume(
      ["q.held"],
      (d) => {
        again.push(d);
        void d.ack();
      },
      { concurrency: 3 },
    );
    const redelivered = await again.waitFor(3, "the 3 messages after AckWait");
    expect(redelivered.map((d) => dec(d.body)).sort()).toEqual(["a", "b", "c"]);
    for (const d of redelivered) expect(d.deliveryCount).toBe(2);
  });

  it("returns the unsettled deliveries of a stopped consumer to a consumer elsewhere", async ({ skip }) => {
    if (!ok) skip();
    const namespace = uniqueNamespace("stop");
    const first = await open(namespace);
    const second = new NatsTransport({ servers: [natsServer], namespace });
    cleanups.push(() => second.close());
    await second.connect();
    for (const m of ["x", "y"]) await first.enqueue("q.stop", enc(m), { priority: 10 });
    const held = new Collector<Delivery>();
    const consumer = await first.consume(["q.stop"], held.push, { concurrency: 2 });
    await held.waitFor(2);
    await consumer.stop();
    const got = new Collector<Delivery>();
    await second.consume(
      ["q.stop"],
      (d) => {
        got.push(d);
        void d.ack();
      },
      { concurrency: 5 },
    );
    const back = await got.waitFor(2);
    expect(back.map((d) => dec(d.body)).sort()).toEqual(["x", "y"]);
    expect(back.map((d) => d.deliveryCount)).toEqual([2, 2]);
  });

  it("does not redeliver a task whose handler runs longer than AckWait", async ({ skip }) => {
    if (!ok) skip();
    const namespace = uniqueNamespace("long");
    const t = await open(namespace, { ackWaitMs: 1000 });
    expect(t.ackDeadlineMs).toBe(1000);
    const pool = new WorkerPool({
      minWorkers: 2,
      maxWorkers: 2,
      config: { maxConcurrentTasks: 2 },
      transport: t,
    });
    cleanups.push(() => pool.stop());
    const attempts: number[] = [];
    pool.registerHandler("slow", async (_data: unknown, ctx) => {
      attempts.push(ctx.attempt);
      // The work itself takes three AckWaits; the worker's in-progress acks keep it ours.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      return "done";
    });
    await pool.start();
    const client = new Coordinator({ config: { minWorkers: 0, autoScale: false }, transport: t });
    cleanups.push(() => client.stop());
    await client.start();
    const task = await client.submitAsync("slow", {});
    const result = await client.waitFor(task.id, { timeoutMs: HANG_GUARD_MS });
    expect(result.status).toBe("completed");
    expect(result.result).toBe("done");
    expect(attempts).toEqual([1]);
    expect(client.getStats().duplicates).toBe(0);
    expect(await t.depth("w2.default")).toBe(0);
    expect(await t.depth(deadLetterQueueOf("w2.default"))).toBe(0);
  });

  it("refuses a payload over the limit before sending anything", async ({ skip }) => {
    if (!ok) skip();
    const t = testTransport();
    cleanups.push(() => t.close());
    await t.connect();
    expect(t.maxPayloadBytes).toBeLessThan(1024 * 1024); // under the server's max_payload, with room for headers
    // No worker serves "big": declared, so that the payload check is what refuses it.
    const client = new Coordinator({
      config: { minWorkers: 0, autoScale: false },
      transport: t,
      taskTypes: ["big"],
    });
    cleanups.push(() => client.stop());
    await client.start();
    const error = await client
      .submitAsync("big", { blob: "x".repeat(t.maxPayloadBytes) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect((error as Error).message).toContain(String(t.maxPayloadBytes));
    const raw = await t
      .enqueue("q.raw", new Uint8Array(t.maxPayloadBytes + 1), { priority: 5 })
      .catch((e) => e);
    expect(raw).toBeInstanceOf(PayloadTooLargeError);
    expect(await streamsOf(t.namespace)).toEqual([]); // nothing reached the server
  });

  it("dead-letters and counts malformed bytes published straight onto a task subject", async ({ skip }) => {
    if (!ok) skip();
    const namespace = uniqueNamespace("junk");
    const t = await open(namespace);
    const worker = new Worker({ transport: t, config: { maxConcurrentTasks: 2 } });
    cleanups.push(() => worker.stop());
    const handled = new Collector<unknown>();
    worker.handler("resize", async (data: unknown) => handled.push(data));
    await worker.start();

    const nc = await connect({ servers: natsServer });
    cleanups.push(() => nc.close());
    const js = jetstream(nc);
    const queue = "w2.default"; // the shared lane the worker consumes
    await js.publish(t.subjectOf(queue, TaskPriority.NORMAL), enc("{not json"));
    await js.publish(t.subjectOf(queue, TaskPriority.HIGH), Uint8Array.of(0xff, 0xfe, 0x00));

    const dead = new Collector<Delivery>();
    await t.consume([deadLetterQueueOf(queue)], dead.push, { concurrency: 5 });
    const letters = await dead.waitFor(2, "two dead letters");
    expect(letters.map((d) => d.headers[DEAD_LETTER_REASON_HEADER])).toEqual([
      expect.stringMatching(/not valid (JSON|UTF-8)/),
      expect.stringMatching(/not valid (JSON|UTF-8)/),
    ]);
    expect(worker.malformedMessages).toBe(2);
    expect(handled.items).toEqual([]);
    expect(await t.depth(queue)).toBe(0);
    expect(worker.info.status).not.toBe("error");
  });

  it("starts a CRITICAL task before any LOW task of the backlog that was not already running", async ({
    skip,
  }) => {
    if (!ok) skip();
    const namespace = uniqueNamespace("prio");
    const t = await open(namespace);
    // The backlog is queued before its worker starts: its type is declared.
    const client = new Coordinator({
      config: { minWorkers: 0, autoScale: false },
      transport: t,
      taskTypes: ["job"],
    });
    cleanups.push(() => client.stop());
    await client.start();
    const backlog = [];
    for (let i = 0; i < 20; i++) backlog.push(await client.submitAsync("job", { name: `low-${i}` }));

    const concurrency = 2;
    const starts = new Collector<string>();
    const gates = new Map<string, () => void>();
    const pool = new WorkerPool({
      minWorkers: 1,
      maxWorkers: 1,
      config: { maxConcurrentTasks: concurrency },
      transport: t,
    });
    cleanups.push(() => pool.stop({ graceful: false }));
    pool.registerHandler("job", async (data: { name: string }) => {
      const gate = deferred();
      gates.set(data.name, gate.resolve);
      starts.push(data.name);
      await gate.promise;
      return data.name;
    });
    await pool.start();
    const running = await starts.waitFor(concurrency, "the first LOW tasks to start");

    const critical = await client.submitAsync(
      "job",
      { name: "critical" },
      { priority: TaskPriority.CRITICAL },
    );
    for (const name of running) gates.get(name)?.();
    const order = await starts.waitFor(concurrency + 2, "the next starts");
    expect(order.indexOf("critical")).toBe(concurrency);

    for (const name of order) gates.get(name)?.();
    expect((await client.waitFor(critical.id, { timeoutMs: HANG_GUARD_MS })).status).toBe("completed");
  });

  it("delivers a delayed message after the ones behind it, counted as its first delivery", async ({
    skip,
  }) => {
    if (!ok) skip();
    const t = testTransport();
    cleanups.push(() => t.close());
    await t.connect();
    const got = new Collector<Delivery>();
    await t.consume(
      ["q.later"],
      (d) => {
        got.push(d);
        void d.ack();
      },
      { concurrency: 1 },
    );
    await t.enqueue("q.later", enc("later"), { priority: 20, delayMs: 800 });
    await t.enqueue("q.later", enc("now"), { priority: 0 });
    const [first, second] = await got.waitFor(2);
    expect(dec(first!.body)).toBe("now");
    expect(dec(second!.body)).toBe("later");
    expect(second!.deliveryCount).toBe(1);
    expect(second!.priority).toBe(20);
  });
});

function spawnHolder(args: string[]): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", HOLDER, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    cwd: fileURLToPath(new URL("../../..", import.meta.url)),
  });
}

/** Resolves when the child prints `line`; rejects if it exits first or after the hang guard. */
function waitForLine(child: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = "";
    const guard = setTimeout(
      () => reject(new Error(`hang guard: child never printed "${line}"`)),
      HANG_GUARD_MS,
    );
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.split("\n").includes(line)) {
        clearTimeout(guard);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(guard);
      reject(new Error(`child exited with ${code} before printing "${line}"`));
    });
  });
}
