/**
 * The seed's examples (seed/cluster-orchestration.md), unchanged but for the transport, as one
 * suite that every broker's *.seed.test.ts runs: through `transportFromUrl(url, { namespace })`
 * and the public API.
 */
import {
  Coordinator,
  type TaskContext,
  TaskPriority,
  TaskQueue,
  type Transport,
  transportFromUrl,
  Worker,
  WorkerPool,
} from "fastagentic";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { deferred } from "../helpers/async.js";
import { uniqueNamespace } from "../helpers/brokers.js";
import { BROKER_LOCK_WAIT_MS } from "./amqp/broker-lock.js";

export interface SeedTarget {
  /** "NATS", "RabbitMQ": shown in the test names. */
  name: string;
  /** The adapter's kind, as Transport.kind reports it. */
  kind: string;
  url: string;
  /** False: skip (already said loudly); throws in CI when the broker is unreachable. */
  available(): Promise<boolean>;
  /** Deletes the broker objects of a namespace. */
  cleanup(namespace: string): Promise<void>;
  /** Taken for the whole suite (RabbitMQ: one test file at a time). */
  lock?(): Promise<() => Promise<void>>;
}

/** The seed's examples, unchanged but for the transport: `transportFromUrl(url, { namespace })`. */
export function describeSeedExamples(target: SeedTarget): void {
  describe(`the seed's examples on ${target.name}`, () => {
    let ok = false;
    let namespace = "";
    const transports: Transport[] = [];
    const stops: Array<() => Promise<void>> = [];

    let release: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      ok = await target.available();
      if (ok && target.lock) release = await target.lock();
    }, BROKER_LOCK_WAIT_MS + 10_000);

    afterAll(async () => {
      await release?.();
    });

    afterEach(async () => {
      for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
      for (const t of transports.splice(0)) await t.close().catch(() => {});
      if (ok && namespace) {
        await target.cleanup(namespace);
      }
    });

    /** What a deployment does: one URL (from the environment), one namespace per application. */
    function broker(): Transport {
      if (transports.length === 0) namespace = uniqueNamespace("seed");
      const transport = transportFromUrl(target.url, { namespace });
      transports.push(transport);
      return transport;
    }

    it("runs the quick start", async ({ skip }) => {
      if (!ok) skip();
      const coordinator = new Coordinator({
        config: { minWorkers: 2, maxWorkers: 10, autoScale: true },
        transport: broker(),
      });
      stops.push(() => coordinator.stop());
      coordinator.handler("process_document", async (data: { page_count: number }) => ({
        processed: true,
        pages: data.page_count,
      }));
      coordinator.handler("generate_summary", async () => ({ summary: "..." }));
      await coordinator.start();
      expect(coordinator.transport.kind).toBe(target.kind);

      const result = await coordinator.submit("process_document", { document_id: "doc-123", page_count: 10 });
      expect(result).toEqual({ processed: true, pages: 10 });

      const task = await coordinator.submitAsync(
        "generate_summary",
        { text: "..." },
        { priority: TaskPriority.HIGH },
      );
      const summary = await coordinator.waitFor(task.id);
      expect(summary.status).toBe("completed");
      expect(summary.result).toEqual({ summary: "..." });
      await coordinator.stop();
    });

    it("runs a Worker: executes a task directly and takes queued ones", async ({ skip }) => {
      if (!ok) skip();
      const transport = broker();
      const worker = new Worker({
        id: "worker-1",
        transport,
        config: {
          maxConcurrentTasks: 4,
          heartbeatIntervalMs: 5000,
          taskTimeoutMs: 300_000,
          tags: ["gpu", "fast"],
        },
      });
      stops.push(() => worker.stop());
      worker.handler("compute", async (data: { x: number }) => ({ result: data.x * 2 }));
      await worker.start();
      const result = await worker.executeTask({ taskId: "task-123", taskType: "compute", data: { x: 21 } });
      expect(result).toEqual({ result: 42 });

      // A task routed by tags to this worker, through the broker.
      const queue = new TaskQueue({ transport });
      stops.push(() => queue.close());
      const task = await queue.enqueue({ taskType: "compute", data: { x: 4 }, tags: ["gpu"] });
      expect(await queue.waitForTask(task.id, { timeoutMs: 20_000 })).toMatchObject({
        status: "completed",
        result: { result: 8 },
        workerId: "worker-1",
      });
      const info = worker.info;
      expect(info.id).toBe("worker-1");
      expect(info.totalCompleted).toBe(2);
      expect(info.isAvailable).toBe(true);
      await worker.stop({ graceful: true });
      expect(worker.info.status).toBe("stopped");
    });

    it("runs a WorkerPool: submit, scale, stats", async ({ skip }) => {
      if (!ok) skip();
      const pool = new WorkerPool({
        minWorkers: 2,
        maxWorkers: 10,
        config: { maxConcurrentTasks: 4 },
        transport: broker(),
      });
      stops.push(() => pool.stop());
      pool.registerHandler("process", async (data: { data: string }) => ({ processed: data.data }));
      pool.registerHandler("analyze", async () => ({ analysis: "..." }));
      await pool.start();
      expect(await pool.submit("process", { data: "..." })).toEqual({ processed: "..." });
      await pool.scale(5);
      const stats = pool.getStats();
      expect(stats.workerCount).toBe(5);
      expect(stats.currentTasks).toBe(0);
      expect(stats.totalCompleted).toBe(1);
      await pool.stop({ graceful: true });
    });

    it("runs the TaskQueue: enqueue, dequeue, complete, fail with retries, cancel, wait", async ({
      skip,
    }) => {
      if (!ok) skip();
      const queue = new TaskQueue({ maxQueueSize: 10_000, transport: broker() });
      stops.push(() => queue.close());
      const task = await queue.enqueue({
        taskType: "analyze",
        data: { document: "..." },
        priority: TaskPriority.HIGH,
        timeoutMs: 60_000,
        retries: 3,
        metadata: { user_id: "user-123" },
      });
      const taken = await queue.dequeue({ workerId: "worker-1", timeoutMs: 5000 });
      expect(taken?.id).toBe(task.id);
      expect(taken?.metadata).toEqual({ user_id: "user-123" });
      const done = await queue.complete(task.id, { analysis: "..." });
      expect(done.status).toBe("completed");
      expect((await queue.waitForTask(task.id, { timeoutMs: 30_000 })).result).toEqual({ analysis: "..." });

      const flaky = await queue.enqueue({ taskType: "analyze", data: {}, retries: 3 });
      expect((await queue.dequeue({ workerId: "worker-1", timeoutMs: 5000 }))?.id).toBe(flaky.id);
      const failed = await queue.fail(flaky.id, "Processing failed");
      expect(failed.status).toBe("queued"); // retries remain: back on the queue, after a back-off
      const cancelled = await queue.cancel(flaky.id);
      expect(cancelled.status).toBe("cancelled");
    });

    it("runs the Coordinator: submit, status, cancel a running task, scale, workers, stats", async ({
      skip,
    }) => {
      if (!ok) skip();
      const coordinator = new Coordinator({
        config: {
          minWorkers: 2,
          maxWorkers: 20,
          scaleUpThreshold: 10,
          scaleDownThreshold: 2,
          autoScale: false,
        },
        transport: broker(),
      });
      stops.push(() => coordinator.stop());
      const started = deferred();
      coordinator.handler("process", async (data: { input: string }) => ({ result: data.input }));
      coordinator.handler("slow", async (_data: unknown, ctx: TaskContext) => {
        started.resolve();
        await new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
        );
      });
      await coordinator.start();

      expect(await coordinator.submit("process", { input: "..." })).toEqual({ result: "..." });
      const task = await coordinator.submitAsync(
        "process",
        { input: "async" },
        { priority: TaskPriority.HIGH, timeoutMs: 60_000, retries: 2 },
      );
      expect((await coordinator.waitFor(task.id)).result).toEqual({ result: "async" });
      expect((await coordinator.getTask(task.id))?.status).toBe("completed");

      const slow = await coordinator.submitAsync("slow", {});
      await started.promise;
      const cancelled = await coordinator.cancelTask(slow.id);
      expect(cancelled.status).toBe("cancelled");

      await coordinator.scale(5);
      expect((await coordinator.getWorkers()).length).toBeGreaterThanOrEqual(5);
      const stats = coordinator.getStats();
      expect(stats.workers.workerCount).toBe(5);
      expect(stats.queue.queueSize).toBe(0);
      await coordinator.stop({ graceful: true });
    });

    it("keeps priority order: a worker started later takes CRITICAL, HIGH, NORMAL, LOW", async ({ skip }) => {
      if (!ok) skip();
      // A pure client (no workers of its own) submits; a pool on another connection runs the tasks.
      // It submits before the pool starts, so it declares the type.
      const client = new Coordinator({
        config: { minWorkers: 0, autoScale: false },
        transport: broker(),
        taskTypes: ["record"],
      });
      stops.push(() => client.stop());
      await client.start();
      const tasks = [];
      for (const [name, priority] of [
        ["low", TaskPriority.LOW],
        ["normal", TaskPriority.NORMAL],
        ["high", TaskPriority.HIGH],
        ["critical", TaskPriority.CRITICAL],
      ] as const) {
        tasks.push(await client.submitAsync("record", { name }, { priority }));
      }
      const order: string[] = [];
      const pool = new WorkerPool({
        minWorkers: 1,
        maxWorkers: 1,
        config: { maxConcurrentTasks: 1 },
        transport: broker(),
      });
      stops.push(() => pool.stop());
      pool.registerHandler("record", async (data: { name: string }) => {
        order.push(data.name);
        return data.name;
      });
      await pool.start();
      for (const task of tasks) {
        expect((await client.waitFor(task.id, { timeoutMs: 20_000 })).status).toBe("completed");
      }
      expect(order).toEqual(["critical", "high", "normal", "low"]);
    });
  });
}
