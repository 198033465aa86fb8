/**
 * The coordinator's decision drives fencing (in memory, on a simulated clock): a worker of
 * another pool declared dead is told so, leaves at once whatever its own stallTimeoutMs, and its
 * pool replaces it under a new id; its late result is not reported; a worker that missed the
 * first notice is told again at its next heartbeat. And the pieces: the worker's own stall check,
 * the release window, the record of who holds what.
 */
import {
  Coordinator,
  InMemoryTransport,
  SimulatedClock,
  silentLogger,
  type TaskContext,
  WorkerPool,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { RELEASE_MARGIN_MS, releaseDelayMs, releaseIsSafe } from "../../src/cluster/failover.js";
import { HeldDeliveries } from "../../src/cluster/held-deliveries.js";
import { WorkerFence } from "../../src/cluster/worker-fence.js";
import { decodeControl, decodeWorkerEvent } from "../../src/codec.js";
import { resolveWorkerConfig } from "../../src/config.js";
import type { FanoutMessage } from "../../transports/transport.js";
import { Collector, deferred } from "../helpers/async.js";

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** A pure-client coordinator and a pool "in another process" (its own object) on one transport. */
async function cluster(setup: (pool: WorkerPool) => void = () => {}) {
  const clock = new SimulatedClock();
  const transport = new InMemoryTransport({ clock });
  const pool = new WorkerPool({
    id: "remote",
    minWorkers: 1,
    maxWorkers: 1,
    transport,
    clock,
    logger: silentLogger,
    // stallTimeoutMs stays at its default (30 s): the coordinator's decision, not the worker's own
    // clock, is what sends it away.
    config: { heartbeatIntervalMs: 500, maxConcurrentTasks: 1 },
  });
  const coordinator = new Coordinator({
    transport,
    clock,
    logger: silentLogger,
    config: { minWorkers: 0, autoScale: false, workerTimeoutMs: 2000, healthCheckIntervalMs: 250 },
  });
  stops.push(
    () => pool.stop({ graceful: false }),
    () => coordinator.stop({ graceful: false }),
  );
  const exits = new Collector<{ workerId: string; reason: string }>();
  pool.on("worker.exited", exits.push);
  setup(pool);
  await pool.start();
  await coordinator.start();
  return { clock, transport, pool, coordinator, exits };
}

const workerEventOf = (m: FanoutMessage, id: string) =>
  m.subject === "ev.workers" && decodeWorkerEvent(m.body).info.id === id;
const isFence = (m: FanoutMessage) => m.subject === "ctl.all" && decodeControl(m.body).kind === "fence";

describe("fencing driven by the coordinator", () => {
  it("a worker declared dead leaves at once, its late result is not reported, and it is replaced under a new id", async () => {
    const gate = deferred();
    const runs = new Collector<{ worker: string; attempt: number }>();
    const { clock, transport, pool, coordinator, exits } = await cluster((p) =>
      p.handler("job", async (_data: unknown, ctx: TaskContext) => {
        runs.push({ worker: ctx.workerId, attempt: ctx.attempt });
        if (ctx.attempt === 1) await gate.promise; // the first run outlives its worker's membership
        return ctx.workerId;
      }),
    );
    const task = await coordinator.submitAsync("job", {});
    const [first] = await runs.waitFor(1);
    const old = first!.worker;
    // Cut the worker off: its heartbeats no longer arrive (the notice to it still does).
    const cut = transport.dropPublishes((m) => workerEventOf(m, old));
    const dead = new Collector<string>();
    coordinator.on("worker.dead", (w) => dead.push(w.id));
    await clock.advance(3000);
    expect(await dead.waitFor(1)).toEqual([old]);
    const [exit] = await exits.waitFor(1);
    expect(exit).toMatchObject({ workerId: old, reason: "declared dead by a coordinator (fenced)" });
    cut();

    // The task ran again on the replacement; the first run's late result is never reported.
    const [, second] = await runs.waitFor(2);
    expect(second!.worker).not.toBe(old);
    expect(await coordinator.waitFor(task.id)).toMatchObject({ status: "completed", result: second!.worker });
    gate.resolve();
    await clock.advance(1000);
    expect((await coordinator.getTask(task.id))?.workerId).toBe(second!.worker);
    expect(coordinator.getStats().duplicates).toBe(0); // no second outcome ever arrived
    expect((await coordinator.getWorkers()).map((w) => w.id)).toEqual([second!.worker]);
    expect(pool.getStats()).toMatchObject({ workerCount: 1, restarts: 1 });
  });

  it("a worker that missed the notice is told again when its next heartbeat arrives", async () => {
    const { clock, transport, pool, coordinator, exits } = await cluster();
    const old = pool.getWorkers()[0]!.id;
    const cut = transport.dropPublishes((m) => workerEventOf(m, old) || isFence(m));
    await clock.advance(3000); // declared dead; the notice is lost
    expect(exits.items).toEqual([]);
    expect(pool.getWorkers().map((w) => w.id)).toEqual([old]); // it still runs, unaware
    expect((await coordinator.getWorkers()).map((w) => w.id)).toEqual([]);
    cut();
    await clock.advance(600); // its next heartbeat arrives: it is told again, leaves, is replaced
    const [exit] = await exits.waitFor(1);
    expect(exit).toMatchObject({ workerId: old, reason: "declared dead by a coordinator (fenced)" });
    await clock.advance(600);
    const now = (await coordinator.getWorkers()).map((w) => w.id);
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(old);
    expect(pool.getWorkers().map((w) => w.id)).toEqual(now);
  });
});

describe("a stalled worker", () => {
  it("does not report what it finished across a stall: the attempt is abandoned and runs again elsewhere", async () => {
    const sim = new SimulatedClock();
    // A clock whose time can jump without its timers running: an event loop that stood still.
    let frozenFor = 0;
    const clock = {
      now: () => sim.now() + frozenFor,
      setTimeout: (fn: () => void, ms: number) => sim.setTimeout(fn, ms),
      clearTimeout: (h: Parameters<SimulatedClock["clearTimeout"]>[0]) => sim.clearTimeout(h),
    };
    const transport = new InMemoryTransport({ clock: sim });
    const coordinator = new Coordinator({
      transport,
      clock: sim,
      logger: silentLogger,
      config: { minWorkers: 0, autoScale: false, workerTimeoutMs: 4000, healthCheckIntervalMs: 250 },
    });
    const pool = new WorkerPool({
      minWorkers: 1,
      maxWorkers: 1,
      transport,
      clock,
      logger: silentLogger,
      config: { heartbeatIntervalMs: 500, stallTimeoutMs: 1000, maxConcurrentTasks: 1 },
    });
    stops.push(
      () => pool.stop({ graceful: false }),
      () => coordinator.stop({ graceful: false }),
    );
    const runs = new Collector<{ worker: string; attempt: number }>();
    pool.handler("job", async (_data: unknown, ctx: TaskContext) => {
      runs.push({ worker: ctx.workerId, attempt: ctx.attempt });
      if (ctx.attempt === 1) frozenFor += 5000; // the run spans a 5 s freeze of its process
      return ctx.attempt;
    });
    const exits = new Collector<{ workerId: string; reason: string }>();
    pool.on("worker.exited", exits.push);
    await pool.start();
    await coordinator.start();
    await sim.advance(500);
    const task = await coordinator.submitAsync("job", {});
    const [first] = await runs.waitFor(1);
    const [exit] = await exits.waitFor(1);
    expect(exit).toMatchObject({
      workerId: first!.worker,
      reason: expect.stringMatching(/^stalled for \d+ ms/),
    });
    await sim.advance(1000);
    const [, second] = await runs.waitFor(2);
    expect(second).toMatchObject({ attempt: 2 });
    expect(second!.worker).not.toBe(first!.worker);
    expect(await coordinator.waitFor(task.id)).toMatchObject({ status: "completed", result: 2 });
    expect(coordinator.getStats().duplicates).toBe(0); // attempt 1 never reported its result
  });
});

describe("a worker's own stall check", () => {
  function fence(stallTimeoutMs = 1000) {
    let now = 10_000;
    const reasons: string[] = [];
    const f = new WorkerFence({
      clock: { now: () => now, setTimeout: () => ({ __timer: true }), clearTimeout: () => {} },
      config: resolveWorkerConfig({ heartbeatIntervalMs: 500, stallTimeoutMs }),
      logger: silentLogger,
      terminate: (reason) => reasons.push(reason),
    });
    return { f, reasons, advance: (ms: number) => (now += ms) };
  }

  it("reports outcomes while heartbeats keep time, not after a stall; a fenced worker never again", () => {
    const { f, reasons, advance } = fence(1000);
    expect(f.mayReport()).toBe(true); // before its first heartbeat
    f.beat();
    advance(1500);
    expect(f.mayReport()).toBe(true); // within interval + stallTimeoutMs
    advance(1);
    expect(f.mayReport()).toBe(false); // the loop stood still too long: the result is not reported
    expect(reasons).toEqual(["stalled for 1501 ms (over stallTimeoutMs 1000)"]);
    expect(f.beat()).toBe(false);
    expect(f.mayReport()).toBe(false);
  });

  it("a fence notice: forgets the released deliveries first, then leaves, once", () => {
    const { f, reasons } = fence();
    const order: string[] = [];
    f.fence(() => order.push("forget"));
    f.fence(() => order.push("forget again"));
    expect(order).toEqual(["forget"]);
    expect(reasons).toEqual(["declared dead by a coordinator (fenced)"]);
    expect(f.mayReport()).toBe(false);
  });
});

describe("failover pieces", () => {
  it("releases only while the broker cannot have handed the delivery on (two thirds of AckWait, less a margin)", () => {
    expect(releaseIsSafe(30_000, 20_000 - RELEASE_MARGIN_MS)).toBe(true);
    expect(releaseIsSafe(30_000, 20_000 - RELEASE_MARGIN_MS + 1)).toBe(false);
    expect(releaseIsSafe(30_000, 30_000)).toBe(false); // the default workerTimeoutMs: AckWait does it
  });

  it("holds a release back until the dead worker's own waiting requests for work have lapsed", () => {
    const lastSeen = 100_000;
    // Heartbeat 500 ms, requests lingering 5 s: its last request reached the broker before
    // lastSeen + 500, so it lapses by lastSeen + 5500; plus the margin.
    expect(releaseDelayMs(lastSeen + 3000, lastSeen, 500, 5000)).toBe(2500 + RELEASE_MARGIN_MS);
    // Declared dead after all of that (workerTimeoutMs longer than interval + linger + margin): at once.
    expect(releaseDelayMs(lastSeen + 30_000, lastSeen, 5000, 5000)).toBe(0);
    // Interval unknown: as if it was in touch until now.
    expect(releaseDelayMs(lastSeen + 3000, lastSeen, undefined, 5000)).toBe(5000 + RELEASE_MARGIN_MS);
    // Nothing lingers (a broker without waiting requests): only what the margin leaves.
    expect(releaseDelayMs(lastSeen + 3000, lastSeen, 500, 0)).toBe(0);
  });

  it("follows what each worker holds: heartbeats list it all, started events add, outcomes remove", () => {
    const held = new HeldDeliveries();
    const at = 1;
    held.heartbeat("w1", ["h1", "h2"]);
    held.taskEvent({ v: 1, kind: "started", taskId: "t3", at, workerId: "w1", release: "h3" });
    held.taskEvent({ v: 1, kind: "started", taskId: "t4", at, workerId: "w1", release: "h4" });
    held.taskEvent({ v: 1, kind: "completed", taskId: "t3", at, workerId: "w1" });
    held.taskEvent({ v: 1, kind: "started", taskId: "t9", at, workerId: "w2" }); // no handle: nothing
    expect(held.take("w1").sort()).toEqual(["h1", "h2", "h4"]);
    expect(held.take("w1")).toEqual([]);
    held.taskEvent({ v: 1, kind: "started", taskId: "t5", at, workerId: "w3", release: "h5" });
    held.heartbeat("w3", []); // it finished t5 (its outcome was lost): the heartbeat says so
    expect(held.take("w3")).toEqual([]);
    expect(held.size).toBe(0);
  });
});
