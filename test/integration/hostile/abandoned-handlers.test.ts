/**
 * Handlers that ignore `ctx.signal` and never finish: after their timeout their slots are freed,
 * but they are counted (getStats, /metrics) until they return, and past `maxAbandonedHandlers` the
 * worker takes no more tasks and is replaced by its supervisor, on every transport.
 */
import { App, Coordinator, silentLogger, TaskTimeoutError, type WorkerExit } from "fastagentic";
import { afterEach, expect, it } from "vitest";
import { Collector, deferred } from "../../helpers/async.js";
import { describeEachTransport } from "./each-transport.js";

describeEachTransport("abandoned handlers", (t) => {
  const open: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  it("are counted, and past the cap their worker is replaced", async ({ skip }) => {
    if (!t.ready) skip();
    const transport = t.make();
    const coordinator = new Coordinator({
      transport,
      config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
      workerConfig: { maxConcurrentTasks: 4, maxAbandonedHandlers: 2 },
      logger: silentLogger,
    });
    const release = deferred();
    const started = new Collector<string>();
    coordinator.handler("stuck", async (_data, ctx) => {
      started.push(ctx.workerId);
      await release.promise; // ignores ctx.signal
      return "too late";
    });
    coordinator.handler("echo", async (data) => data);
    const exits = new Collector<WorkerExit>();
    coordinator.pool.on("worker.exited", exits.push);
    const app = new App({ appLogger: silentLogger });
    app.mountCoordinator(coordinator);
    open.push(async () => {
      release.resolve();
      await app.close();
      await coordinator.stop();
      await transport.close();
    });
    await app.server.ready();
    await coordinator.start();
    const first = coordinator.pool.getWorkers()[0]?.id;

    // Two abandoned handlers: at the cap, the worker goes on (their slots are free again).
    for (let i = 0; i < 2; i++) {
      await expect(coordinator.submit("stuck", { i }, { timeoutMs: 100 })).rejects.toBeInstanceOf(
        TaskTimeoutError,
      );
    }
    expect(coordinator.getStats().workers).toMatchObject({
      abandonedHandlers: 2,
      totalAbandoned: 2,
      restarts: 0,
    });
    expect(await coordinator.submit("echo", 1)).toBe(1);

    // A third: over the cap, the worker leaves and its supervisor replaces it.
    await expect(coordinator.submit("stuck", { i: 3 }, { timeoutMs: 100 })).rejects.toBeInstanceOf(
      TaskTimeoutError,
    );
    const [exit] = await exits.waitFor(1, "the overloaded worker leaving");
    expect(exit).toMatchObject({ workerId: first, abnormal: true });
    expect(exit?.reason).toMatch(/3 handlers still running after their timeout or cancellation/);
    expect(await coordinator.submit("echo", 2)).toBe(2); // the replacement takes tasks
    const workers = coordinator.pool.getWorkers();
    expect(workers.map((w) => w.id)).not.toContain(first);
    expect(coordinator.getStats().workers).toMatchObject({
      abandonedHandlers: 3,
      totalAbandoned: 3,
      restarts: 1,
    });
    const metrics = (await app.server.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toMatch(/^fastagentic_abandoned_handlers 3$/m);
    expect(metrics).toMatch(/^fastagentic_abandoned_handlers_total 3$/m);
    expect(started.items).toHaveLength(3); // no stuck task ran twice

    // When they do return at last, they are no longer counted.
    release.resolve();
    await new Promise((r) => setImmediate(r));
    expect(coordinator.getStats().workers).toMatchObject({ abandonedHandlers: 0, totalAbandoned: 3 });
  });
});
