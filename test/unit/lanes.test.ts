import {
  Coordinator,
  InMemoryTransport,
  SimulatedClock,
  silentLogger,
  type TaskContext,
  TaskFailedError,
  Worker,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { laneOf, profileLaneOf, queuesServedBy } from "../../src/names.js";
import { deferred } from "../helpers/async.js";
import { overriding } from "../helpers/tap.js";

const toStop: Array<{ stop(o?: { graceful?: boolean }): Promise<void> }> = [];
afterEach(async () => {
  for (const c of toStop.splice(0).reverse()) await c.stop({ graceful: false });
});

/** Advances simulated time until `p` settles (bounded). */
async function settle<T>(clock: SimulatedClock, p: Promise<T>, steps = 200): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < steps && !done; i++) {
    await clock.advance(250);
    await new Promise((r) => setImmediate(r));
  }
  return p;
}

async function cluster() {
  const clock = new SimulatedClock();
  const transport = new InMemoryTransport({ clock });
  const coordinator = new Coordinator({
    transport,
    clock,
    logger: silentLogger,
    taskTypes: "any",
    config: { minWorkers: 0, maxWorkers: 0 },
  });
  toStop.push(coordinator);
  await coordinator.start();
  const worker = async (id: string, types: string[], tags: string[] = []) => {
    const w = new Worker({
      id,
      transport,
      clock,
      logger: silentLogger,
      config: { tags, heartbeatIntervalMs: 1000 },
    });
    toStop.push(w);
    for (const type of types)
      w.handler(type, async (_d: unknown, ctx: TaskContext) => `${id}:${ctx.attempt}`);
    await w.start();
    return w;
  };
  return { clock, transport, coordinator, worker };
}

describe("lanes (routing layout 2)", () => {
  it("names two lanes per worker, however many types and tags it serves", () => {
    const types = Array.from({ length: 300 }, (_, i) => `type-${i}`);
    const tags = ["a", "b", "c", "d", "e", "f"];
    expect(queuesServedBy("default", types, tags)).toEqual([
      laneOf("default"),
      profileLaneOf("default", types, tags),
    ]);
    expect(laneOf("default")).toBe("w2.default");
    expect(profileLaneOf("default", types, tags)).toMatch(/^w2\.default\.p[0-9a-f]{16}$/);
    expect(profileLaneOf("default", [...types].reverse(), tags)).toBe(profileLaneOf("default", types, tags));
    expect(profileLaneOf("default", types, ["a"])).not.toBe(profileLaneOf("default", types, tags));
  });

  it("runs each task on a worker that serves its type and tags, moving the others", async () => {
    const { clock, coordinator, worker } = await cluster();
    await worker("A", ["a"]);
    await worker("B", ["b"], ["gpu"]);
    const runs: Array<Promise<unknown>> = [];
    for (let i = 0; i < 10; i++) {
      runs.push(coordinator.submit("a", i));
      runs.push(coordinator.submit("b", i, { tags: ["gpu"] }));
    }
    const results = (await settle(clock, Promise.all(runs))) as string[];
    for (let i = 0; i < results.length; i++) expect(results[i]).toBe(i % 2 === 0 ? "A:1" : "B:1");
  });

  it("parks a task no live worker serves until one comes, without using its attempts", async () => {
    const { clock, coordinator, worker } = await cluster();
    await worker("A", ["a"]);
    const waiting = coordinator.submit("late", 1, { retries: 0 });
    for (let i = 0; i < 40; i++) await clock.advance(500); // parked and looked at again, 20 s
    await worker("L", ["late"]);
    expect(await settle(clock, waiting)).toBe("L:1");
  });

  it("keeps counting attempts across moves (retries are not reset by a move)", async () => {
    const { clock, coordinator, worker, transport } = await cluster();
    await worker("A", ["a"]);
    const b = new Worker({
      id: "B",
      transport,
      clock,
      logger: silentLogger,
      config: { heartbeatIntervalMs: 1000 },
    });
    toStop.push(b);
    const attempts: number[] = [];
    b.handler("b", async (_d: unknown, ctx: TaskContext) => {
      attempts.push(ctx.attempt);
      throw new Error("always");
    });
    await b.start();
    const failing = coordinator.submit("b", 1, { retries: 3 });
    const error = await settle(clock, failing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).attempts).toBe(4);
    expect(attempts).toEqual([1, 2, 3, 4]);
  });

  it("carries the attempts a task had into the lane it is moved or parked to", async () => {
    const { clock, coordinator, worker, transport } = await cluster();
    const attempts: number[] = [];
    const failing = (id: string) => {
      const w = new Worker({
        id,
        transport,
        clock,
        logger: silentLogger,
        config: { heartbeatIntervalMs: 1000 },
      });
      toStop.push(w);
      w.handler("b", async (_d: unknown, ctx: TaskContext) => {
        attempts.push(ctx.attempt);
        throw new Error("always");
      });
      return w;
    };
    const first = failing("B1");
    await first.start();
    const outcome = coordinator.submit("b", 1, { retries: 2 }).catch((e: unknown) => e);
    for (let i = 0; i < 100 && attempts.length === 0; i++) await clock.advance(10);
    await settle(clock, first.stop({ graceful: true }));
    await worker("A", ["a"]); // takes the retry from the shared lane: parks it (nobody serves "b")
    for (let i = 0; i < 20; i++) await clock.advance(500);
    await failing("B2").start();
    const error = await settle(clock, outcome);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect(attempts).toEqual([1, 2, 3]);
  });

  it("puts back on the shared lane what was moved to a profile that went silent", async () => {
    const { clock, coordinator, worker, transport } = await cluster();
    await worker("A", ["a"]);
    const gate = deferred<void>();
    const b = new Worker({
      id: "B",
      transport,
      clock,
      logger: silentLogger,
      config: { heartbeatIntervalMs: 1000, maxConcurrentTasks: 1 },
    });
    toStop.push(b);
    b.handler("b", async () => {
      await gate.promise;
      return "B";
    });
    await b.start();
    // B holds one; A takes the others, learns B's profile (heartbeats) and moves them to B's lane.
    const first = Array.from({ length: 4 }, (_, i) => coordinator.submit("b", i).catch((e: unknown) => e));
    for (let i = 0; i < 20; i++) await clock.advance(500);
    expect(await transport.depth(profileLaneOf("default", ["b"], []))).toBeGreaterThan(0);
    await b.stop({ graceful: false }); // gone for good: its lane would keep them
    for (let i = 0; i < 200; i++) await clock.advance(500); // past PROFILE_TTL_MS: A rescues the lane
    expect(await transport.depth(profileLaneOf("default", ["b"], []))).toBe(0);
    const c = new Worker({
      id: "C",
      transport,
      clock,
      logger: silentLogger,
      config: { heartbeatIntervalMs: 1000 },
    });
    toStop.push(c);
    c.handler("b", async () => "C");
    c.handler("c", async () => "C");
    await c.start(); // another profile serving "b": it finds them on the shared lane
    const results = await settle(clock, Promise.all(first));
    expect(results.filter((r) => r === "C").length).toBeGreaterThanOrEqual(3);
    gate.resolve();
  });

  it("keeps consuming the lane of its earlier profile when its handlers grow after start", async () => {
    const inner = new InMemoryTransport();
    const consumed: string[][] = [];
    const transport = overriding(inner, {
      consume: (queues, onDelivery, options) => {
        consumed.push([...queues]);
        return inner.consume(queues, onDelivery, options);
      },
    });
    const w = new Worker({ transport, logger: silentLogger });
    toStop.push(w);
    w.handler("a", async () => 1);
    await w.start();
    w.handler("b", async () => 2);
    for (let i = 0; i < 100 && consumed.length < 2; i++) await new Promise((r) => setImmediate(r));
    expect(consumed.at(-1)).toEqual([
      laneOf("default"),
      profileLaneOf("default", ["a", "b"], []),
      profileLaneOf("default", ["a"], []),
    ]);
  });
});
