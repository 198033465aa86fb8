import {
  Coordinator,
  type Delivery,
  InMemoryTransport,
  InMemoryWorkerRegistry,
  NoHandlerError,
  SimulatedClock,
  StateError,
  silentLogger,
  type TaskContext,
  TaskFailedError,
  TaskTimeoutError,
  TransportWorkerRegistry,
  Worker,
  WorkerPool,
  WorkerStatus,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { Collector, deferred } from "../helpers/async.js";

const toStop: Array<{ stop(o?: { graceful?: boolean }): Promise<void> }> = [];
afterEach(async () => {
  for (const c of toStop.splice(0)) await c.stop({ graceful: false });
});

describe("Worker", () => {
  it("runs the seed's example: executeTask returns the handler's result", async () => {
    const worker = new Worker({
      id: "worker-1",
      logger: silentLogger,
      config: {
        maxConcurrentTasks: 4,
        heartbeatIntervalMs: 5000,
        taskTimeoutMs: 300_000,
        tags: ["gpu", "fast"],
      },
    });
    toStop.push(worker);
    worker.handler("compute", async (data: { x: number }) => ({ result: data.x * 2 }));
    await worker.start();
    expect(await worker.executeTask({ taskId: "task-123", taskType: "compute", data: { x: 21 } })).toEqual({
      result: 42,
    });
    const info = worker.info;
    expect(info).toMatchObject({
      id: "worker-1",
      status: WorkerStatus.IDLE,
      currentTasks: 0,
      totalCompleted: 1,
      totalFailed: 0,
      isAvailable: true,
      tags: ["fast", "gpu"],
      types: ["compute"],
      pid: process.pid,
    });
    expect(typeof info.hostname).toBe("string");
    await worker.stop({ graceful: true });
    expect(worker.status).toBe(WorkerStatus.STOPPED);
    expect(worker.info.isAvailable).toBe(false);
  });

  it("hands the handler a context that can be destructured; progress() reaches the delivery", async () => {
    const transport = new InMemoryTransport();
    const touched = new Collector<string>();
    const consume = transport.consume.bind(transport);
    transport.consume = (queues, onDelivery, options) =>
      consume(
        queues,
        (d: Delivery) => {
          const inProgress = d.inProgress.bind(d);
          d.inProgress = () => {
            touched.push(d.queue);
            return inProgress();
          };
          onDelivery(d);
        },
        options,
      );
    const coordinator = new Coordinator({ transport, logger: silentLogger, config: { minWorkers: 1 } });
    toStop.push(coordinator);
    const seen = new Collector<Omit<TaskContext, "signal" | "progress"> & { aborted: boolean }>();
    const ownKeys = new Collector<string>();
    coordinator.handler("report", async (_data: unknown, ctx: TaskContext) => {
      const { taskId, taskType, attempt, workerId, metadata, tags, headers, progress, signal } = ctx;
      await progress();
      await progress();
      seen.push({ taskId, taskType, attempt, workerId, metadata, tags, headers, aborted: signal.aborted });
      ownKeys.push(Object.keys(ctx).sort().join(","));
      return "ok";
    });
    await coordinator.start();
    const result = await coordinator.submit("report", {}, { id: "r-1", metadata: { who: "me" } });
    expect(result).toBe("ok");
    const [ctx] = await seen.waitFor(1);
    expect(ctx).toMatchObject({
      taskId: "r-1",
      taskType: "report",
      attempt: 1,
      metadata: { who: "me" },
      tags: [],
      aborted: false,
    });
    expect((await coordinator.getWorkers()).map((w) => w.id)).toContain(ctx?.workerId);
    expect(await touched.waitFor(2)).toEqual(["w2.default", "w2.default"]);
    // What the handler can see of its context: the TaskContext, not the worker's run state.
    expect(await ownKeys.waitFor(1)).toEqual(["attempt,headers,metadata,tags,taskId,taskType,workerId"]);
  });

  it("executeTask surfaces failures, timeouts and unknown types as typed errors", async () => {
    const clock = new SimulatedClock();
    const worker = new Worker({ logger: silentLogger, clock });
    toStop.push(worker);
    worker.handler("bad", async () => {
      throw new Error("nope");
    });
    worker.handler(
      "slow",
      (_: unknown, ctx: TaskContext) => new Promise((r) => ctx.signal.addEventListener("abort", r)),
    );
    await expect(worker.executeTask({ taskType: "bad" })).rejects.toBeInstanceOf(StateError);
    await worker.start();
    await expect(worker.executeTask({ taskType: "bad" })).rejects.toBeInstanceOf(TaskFailedError);
    await expect(worker.executeTask({ taskType: "missing" })).rejects.toBeInstanceOf(NoHandlerError);
    const slow = worker.executeTask({ taskType: "slow", timeoutMs: 100 }).catch((e: unknown) => e);
    await clock.advance(100);
    expect(await slow).toBeInstanceOf(TaskTimeoutError);
    expect(worker.info.totalFailed).toBe(2);
  });

  it("is busy while it runs tasks, idle after, and draining while it stops gracefully", async () => {
    const worker = new Worker({ logger: silentLogger, config: { gracefulShutdownTimeoutMs: 60_000 } });
    toStop.push(worker);
    const gate = deferred();
    const started = new Collector<number>();
    worker.handler("job", async () => {
      started.push(1);
      await gate.promise;
      return 1;
    });
    await worker.start();
    const run = worker.executeTask({ taskType: "job" });
    await started.waitFor(1);
    expect(worker.status).toBe(WorkerStatus.BUSY);
    expect(worker.info.currentTasks).toBe(1);
    const stopping = worker.stop({ graceful: true });
    expect(worker.status).toBe(WorkerStatus.DRAINING);
    await expect(worker.executeTask({ taskType: "job" })).rejects.toBeInstanceOf(StateError);
    gate.resolve();
    expect(await run).toBe(1);
    await stopping;
    expect(worker.status).toBe(WorkerStatus.STOPPED);
    await expect(worker.start()).rejects.toThrow(/cannot restart/);
  });

  it("heartbeats on its interval with its info, and announces its stop", async () => {
    const clock = new SimulatedClock();
    const transport = new InMemoryTransport({ clock });
    const registry = new TransportWorkerRegistry(transport, clock);
    await registry.start();
    const beats = new Collector<string>();
    await transport.subscribe("ev.workers", (m) =>
      beats.push(JSON.parse(new TextDecoder().decode(m.body)).kind),
    );
    const worker = new Worker({
      id: "w-hb",
      transport,
      clock,
      logger: silentLogger,
      config: { heartbeatIntervalMs: 1000 },
    });
    toStop.push(worker);
    worker.handler("x", async () => 1);
    await worker.start();
    await beats.waitFor(1);
    await clock.advance(3000);
    await beats.waitFor(4);
    expect(await registry.getWorkers()).toMatchObject([{ id: "w-hb", types: ["x"] }]);
    await worker.stop();
    await beats.waitFor(5);
    expect(beats.items.at(-1)).toBe("stopped");
    await clock.advance(1);
    expect(await registry.getWorkers()).toEqual([]);
    await registry.stop();
  });

  it("rejects options it does not know", () => {
    expect(() => new Worker({ id: "x", confg: {} } as never)).toThrow(/Unknown option "confg"/);
    expect(() => new Worker({ queueName: "a.b" })).toThrow(/Invalid queue name/);
  });
});

describe("WorkerPool", () => {
  it("runs the seed's example: start, submit, scale, stats, stop", async () => {
    const pool = new WorkerPool({
      minWorkers: 2,
      maxWorkers: 10,
      config: { maxConcurrentTasks: 4 },
      logger: silentLogger,
    });
    toStop.push(pool);
    pool.registerHandler("process", async (data: { data: string }) => ({ processed: data.data }));
    pool.registerHandler("analyze", async () => ({ ok: true }));
    await pool.start();
    expect(pool.getStats().workerCount).toBe(2);
    expect(await pool.submit("process", { data: "..." })).toEqual({ processed: "..." });
    await pool.scale(5);
    const stats = pool.getStats();
    expect(stats).toMatchObject({ workerCount: 5, currentTasks: 0, totalCompleted: 1 });
    await pool.stop({ graceful: true });
    expect(pool.getStats().workerCount).toBe(0);
    expect(pool.getStats().totalCompleted).toBe(1);
  });
});

describe("InMemoryWorkerRegistry", () => {
  it("registers, heartbeats, filters by status and tags, and unregisters", async () => {
    const clock = new SimulatedClock();
    const registry = new InMemoryWorkerRegistry(clock);
    const base = {
      status: WorkerStatus.IDLE,
      currentTasks: 0,
      maxConcurrentTasks: 4,
      totalCompleted: 0,
      totalFailed: 0,
      uptimeSeconds: 0,
      isAvailable: true,
      types: ["x"],
      lastHeartbeat: 0,
      startedAt: 0,
      pid: 1,
      hostname: "h",
    };
    await registry.register({ ...base, id: "gpu-1", tags: ["gpu", "fast"] });
    await registry.register({ ...base, id: "cpu-1", tags: [] });
    await registry.register({ ...base, id: "gpu-busy", tags: ["gpu"], status: WorkerStatus.BUSY });
    expect(
      (await registry.getWorkers({ status: WorkerStatus.IDLE, tags: ["gpu"] })).map((w) => w.id),
    ).toEqual(["gpu-1"]);
    expect(registry.serves("x")).toBe(true);
    expect(registry.serves("y")).toBe(false);
    await clock.advance(10_000);
    await registry.heartbeat("gpu-1");
    expect(
      registry
        .expire(5000)
        .map((w) => w.id)
        .sort(),
    ).toEqual(["cpu-1", "gpu-busy"]);
    await registry.unregister("gpu-1");
    expect(await registry.getWorkers()).toEqual([]);
    await expect(registry.heartbeat("ghost")).rejects.toThrow(/No worker with id "ghost"/);
  });
});
