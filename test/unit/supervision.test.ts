import {
  Coordinator,
  type CoordinatorOptions,
  EscalationError,
  InMemoryTransport,
  SimulatedClock,
  silentLogger,
  type TaskContext,
  WorkerPool,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { flushPromises } from "../../src/clock.js";
import { Collector, deferred } from "../helpers/async.js";

const toStop: Array<{ stop(o?: { graceful?: boolean }): Promise<void> }> = [];
afterEach(async () => {
  for (const c of toStop.splice(0)) await c.stop({ graceful: false });
});

function make(options: CoordinatorOptions = {}) {
  const clock = new SimulatedClock();
  const transport = new InMemoryTransport({ clock });
  const coordinator = new Coordinator({
    logger: silentLogger,
    clock,
    transport,
    ...options,
    config: { retryBackoff: { jitter: 0, initialMs: 100 }, ...options.config },
  });
  toStop.push(coordinator);
  return { coordinator, clock, transport };
}

describe("auto-scaling", () => {
  it("follows queue depth between minWorkers and maxWorkers, with a scale-down delay", async () => {
    const { coordinator, clock } = make({
      config: {
        minWorkers: 1,
        maxWorkers: 5,
        autoScale: true,
        scaleUpThreshold: 4,
        scaleDownThreshold: 1,
        autoScaleIntervalMs: 1000,
        scaleDownDelayMs: 3000,
      },
      workerConfig: { maxConcurrentTasks: 1 },
    });
    const gate = deferred();
    coordinator.handler("job", async () => gate.promise);
    const scaled = new Collector<{ from: number; to: number }>();
    coordinator.on("scaled", scaled.push);
    await coordinator.start();
    expect(coordinator.getStats().workers.workerCount).toBe(1);
    const tasks = await Promise.all(Array.from({ length: 30 }, () => coordinator.submitAsync("job", {})));
    await clock.advance(1000);
    const [up] = await scaled.waitFor(1);
    expect(up).toEqual({ from: 1, to: 5 });
    expect(coordinator.getStats().workers.workerCount).toBe(5);
    expect(coordinator.getStats().queue.depth).toBe(29);
    gate.resolve();
    await Promise.all(tasks.map((t) => coordinator.waitFor(t.id)));
    // Depth is now 0 (< 1): the first low sample starts the delay, then one worker per delay.
    await clock.advance(1000);
    expect(coordinator.getStats().workers.workerCount).toBe(5);
    await clock.advance(3000);
    await scaled.waitFor(2);
    expect(coordinator.getStats().workers.workerCount).toBe(4);
    for (let i = 0; i < 4; i++) await clock.advance(3000);
    await scaled.waitFor(5);
    expect(scaled.items.slice(1).map((s) => s.to)).toEqual([4, 3, 2, 1]);
    await clock.advance(10_000);
    expect(coordinator.getStats().workers.workerCount).toBe(1);
    expect(coordinator.getStats().completed).toBe(30);
  });

  it("scales by hand within the bounds, draining the workers it removes", async () => {
    const { coordinator } = make({ config: { minWorkers: 2, maxWorkers: 6, autoScale: false } });
    coordinator.handler("x", async () => 1);
    await coordinator.start();
    await coordinator.scale(5);
    expect((await coordinator.getWorkers()).filter((w) => w.status !== "stopped")).toHaveLength(5);
    await coordinator.scale(2);
    expect(coordinator.getStats().workers.workerCount).toBe(2);
    await expect(coordinator.scale(7)).rejects.toThrow(
      /cannot scale to 7 workers.*minWorkers \(2\) to maxWorkers \(6\)/,
    );
  });
});

describe("health checks and supervision", () => {
  it("removes a worker whose heartbeats stop, replaces it, and reruns its task elsewhere", async () => {
    const { coordinator, clock, transport } = make({
      config: {
        minWorkers: 2,
        maxWorkers: 2,
        autoScale: false,
        healthCheckIntervalMs: 1000,
        workerTimeoutMs: 3000,
      },
      workerConfig: { heartbeatIntervalMs: 500, maxConcurrentTasks: 1 },
    });
    const starts = new Collector<{ worker: string; attempt: number }>();
    const hang = deferred();
    coordinator.handler("job", async (_: unknown, ctx: TaskContext) => {
      starts.push({ worker: ctx.workerId, attempt: ctx.attempt });
      if (ctx.attempt === 1) await hang.promise; // the first run hangs on the partitioned worker
      return ctx.workerId;
    });
    const dead = new Collector<string>();
    coordinator.on("worker.dead", (info) => dead.push(info.id));
    await coordinator.start();
    await clock.advance(500);
    const task = await coordinator.submitAsync("job", {});
    const [first] = await starts.waitFor(1);
    // Partition the worker running the task: its heartbeats no longer reach anyone.
    transport.dropPublishes(
      (m) => m.subject === "ev.workers" && new TextDecoder().decode(m.body).includes(first!.worker),
    );
    await clock.advance(4000);
    expect(await dead.waitFor(1)).toEqual([first!.worker]);
    const [, second] = await starts.waitFor(2);
    expect(second!.worker).not.toBe(first!.worker);
    expect(second!.attempt).toBe(2);
    expect(await coordinator.waitFor(task.id)).toMatchObject({ status: "completed", result: second!.worker });
    await clock.advance(1000);
    const stats = coordinator.getStats();
    expect(stats.workers.workerCount).toBe(2);
    expect(stats.workers.restarts).toBe(1);
    expect((await coordinator.getWorkers()).map((w) => w.id)).not.toContain(first!.worker);
    hang.resolve();
  });

  it("escalates when workers die faster than the restart intensity allows", async () => {
    const clock = new SimulatedClock();
    const pool = new WorkerPool({
      minWorkers: 1,
      maxWorkers: 1,
      clock,
      transport: new InMemoryTransport({ clock }),
      logger: silentLogger,
      restartIntensity: { maxRestarts: 2, periodMs: 60_000 },
    });
    toStop.push(pool);
    pool.handler("x", async () => 1);
    const escalated = new Collector<EscalationError>();
    const started = new Collector<string>();
    pool.on("escalated", escalated.push);
    pool.on("worker.started", (info) => started.push(info.id));
    await pool.start();
    for (let i = 1; i <= 3; i++) {
      const [id] = (await started.waitFor(i)).slice(-1);
      await pool.declareDead(id!, "test kill");
      await clock.advance(10_000);
    }
    const [error] = await escalated.waitFor(1);
    expect(error).toBeInstanceOf(EscalationError);
    expect(error!.message).toMatch(/gave up restarting workers: more than 2 restarts within 60000 ms/);
    expect(pool.getStats()).toMatchObject({ restarts: 2, escalated: true, workerCount: 0 });
  });

  it("stops gracefully: running tasks finish before stop() resolves, queued ones stay queued", async () => {
    const { coordinator } = make({
      config: { minWorkers: 1, autoScale: false },
      workerConfig: { maxConcurrentTasks: 1 },
    });
    const gate = deferred();
    const started = new Collector<number>();
    coordinator.handler("job", async (data: { n: number }) => {
      started.push(data.n);
      await gate.promise;
      return data.n;
    });
    await coordinator.start();
    const first = await coordinator.submitAsync("job", { n: 1 });
    const second = await coordinator.submitAsync("job", { n: 2 });
    await started.waitFor(1);
    let stopped = false;
    const stopping = coordinator.stop({ graceful: true }).then(() => {
      stopped = true;
    });
    // Let the stop go as far as it can without the running task: it must wait there, draining.
    await flushPromises();
    await flushPromises();
    expect(stopped).toBe(false);
    expect(coordinator.pool.getWorkers().map((w) => w.status)).toEqual(["draining"]);
    gate.resolve();
    await stopping;
    expect(started.items).toEqual([1]);
    expect((await coordinator.getTask(first.id))?.status).toBe("completed");
    expect((await coordinator.getTask(second.id))?.status).toBe("queued");
  });
});
