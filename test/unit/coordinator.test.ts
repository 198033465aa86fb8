import {
  ConfigError,
  Coordinator,
  type CoordinatorOptions,
  InMemoryTransport,
  InvalidNameError,
  NoHandlerError,
  NotSerializableError,
  PayloadTooLargeError,
  QueueFullError,
  SimulatedClock,
  silentLogger,
  TaskCancelledError,
  type TaskContext,
  TaskFailedError,
  TaskIdConflictError,
  TaskPriority,
  TaskTimeoutError,
  UnknownTaskError,
  UnrecoverableError,
  WaitTimeoutError,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { Collector, deferred } from "../helpers/async.js";

const running: Coordinator[] = [];
afterEach(async () => {
  for (const c of running.splice(0)) await c.stop({ graceful: false });
});

function make(options: CoordinatorOptions = {}) {
  const clock = (options.clock as SimulatedClock | undefined) ?? new SimulatedClock();
  const transport = options.transport ?? new InMemoryTransport({ clock });
  const coordinator = new Coordinator({
    logger: silentLogger,
    ...options,
    clock,
    transport,
    config: {
      minWorkers: 1,
      maxWorkers: 4,
      autoScale: false,
      retryBackoff: { initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0 },
      ...options.config,
    },
  });
  running.push(coordinator);
  return { coordinator, clock, transport: transport as InMemoryTransport };
}

describe("Coordinator on the in-memory transport", () => {
  it("runs the seed's quick start and gives the seed's results", async () => {
    const { coordinator } = make({ config: { minWorkers: 2, maxWorkers: 10, autoScale: true } });
    coordinator.handler("process_document", async (data: { page_count: number }) => ({
      processed: true,
      pages: data.page_count,
    }));
    coordinator.handler("generate_summary", async () => ({ summary: "..." }));
    await coordinator.start();
    expect(await coordinator.submit("process_document", { document_id: "doc-123", page_count: 10 })).toEqual({
      processed: true,
      pages: 10,
    });
    const task = await coordinator.submitAsync(
      "generate_summary",
      { text: "..." },
      { priority: TaskPriority.HIGH },
    );
    expect(task).toMatchObject({ type: "generate_summary", priority: 10, status: "queued", retryCount: 0 });
    const result = await coordinator.waitFor(task.id);
    expect(result).toMatchObject({ taskId: task.id, status: "completed", result: { summary: "..." } });
    expect((await coordinator.getTask(task.id))?.status).toBe("completed");
    const stats = coordinator.getStats();
    expect(stats).toMatchObject({
      running: 0,
      completed: 2,
      queue: { queueSize: 0 },
      workers: { workerCount: 2 },
    });
    const workers = await coordinator.getWorkers();
    expect(workers).toHaveLength(2);
    expect(workers[0]).toMatchObject({ pid: process.pid, isAvailable: true });
  });

  it("runs higher priority first and first-in first-out within a priority", async () => {
    const { coordinator } = make({ workerConfig: { maxConcurrentTasks: 1 } });
    const gate = deferred();
    const started = new Collector<string>();
    coordinator.handler("job", async (data: { name: string }) => {
      started.push(data.name);
      if (data.name === "blocker") await gate.promise;
      return data.name;
    });
    await coordinator.start();
    const all = [coordinator.submit("job", { name: "blocker" })];
    await started.waitFor(1);
    const order: Array<[string, TaskPriority]> = [
      ["low", TaskPriority.LOW],
      ["normal-1", TaskPriority.NORMAL],
      ["critical", TaskPriority.CRITICAL],
      ["high", TaskPriority.HIGH],
      ["normal-2", TaskPriority.NORMAL],
    ];
    // Every task is in the queue (its enqueue confirmed) before the blocker ends.
    const queued = [];
    for (const [name, priority] of order)
      queued.push(await coordinator.submitAsync("job", { name }, { priority }));
    gate.resolve();
    await Promise.all([...all, ...queued.map((t) => coordinator.waitFor(t.id))]);
    expect(started.items).toEqual(["blocker", "critical", "high", "normal-1", "normal-2", "low"]);
  });

  it("retries a failing task with exponential back-off on the injected clock", async () => {
    const { coordinator, clock } = make();
    const attempts = new Collector<number>();
    coordinator.handler("flaky", async (_: unknown, ctx: TaskContext) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt < 3) throw new Error(`boom ${ctx.attempt}`);
      return "ok";
    });
    await coordinator.start();
    const task = await coordinator.submitAsync("flaky", {}, { retries: 2 });
    await attempts.waitFor(1);
    await clock.advance(999);
    expect(attempts.items).toEqual([1]);
    const after1 = await coordinator.getTask(task.id);
    expect(after1).toMatchObject({ status: "queued", error: "boom 1" });
    await clock.advance(1);
    await attempts.waitFor(2);
    await clock.advance(1999);
    expect(attempts.items).toEqual([1, 2]);
    await clock.advance(1);
    const result = await coordinator.waitFor(task.id);
    expect(result).toMatchObject({ status: "completed", result: "ok" });
    expect(await coordinator.getTask(task.id)).toMatchObject({ retryCount: 2, status: "completed" });
    expect(coordinator.getStats()).toMatchObject({ retried: 2, completed: 1 });
  });

  it("fails a task once its retries are used up, with the last error", async () => {
    const { coordinator, clock } = make();
    coordinator.handler("broken", async (_: unknown, ctx: TaskContext) => {
      throw new Error(`attempt ${ctx.attempt} failed`);
    });
    await coordinator.start();
    const outcome = coordinator.submit("broken", {}, { retries: 1 }).catch((e: unknown) => e);
    await clock.advance(1000);
    const error = await outcome;
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).taskError).toBe("attempt 2 failed");
    expect((error as Error).message).toMatch(/failed after 2 attempt\(s\): attempt 2 failed/);
  });

  it("skips the retries of an UnrecoverableError", async () => {
    const { coordinator } = make();
    const attempts = new Collector<number>();
    coordinator.handler("fatal", async (_: unknown, ctx: TaskContext) => {
      attempts.push(ctx.attempt);
      throw new UnrecoverableError("bad input, do not retry");
    });
    await coordinator.start();
    await expect(coordinator.submit("fatal", {}, { retries: 5 })).rejects.toBeInstanceOf(TaskFailedError);
    expect(attempts.items).toEqual([1]);
  });

  it("reports a handler that throws a non-Error readably", async () => {
    const { coordinator } = make();
    coordinator.handler("weird", async () => {
      throw { reason: "quota", left: 0 };
    });
    coordinator.handler("stringy", async () => {
      throw "plain string";
    });
    await coordinator.start();
    const a = await coordinator.submitAsync("weird", {});
    const b = await coordinator.submitAsync("stringy", {});
    expect((await coordinator.waitFor(a.id)).error).toBe(
      'non-Error value thrown: {"reason":"quota","left":0}',
    );
    expect((await coordinator.waitFor(b.id)).error).toBe("plain string");
  });

  it("aborts a handler through ctx.signal when its timeout passes, ending as timeout", async () => {
    const { coordinator, clock } = make();
    const started = new Collector<AbortSignal>();
    coordinator.handler("slow", (_: unknown, ctx: TaskContext) => {
      started.push(ctx.signal);
      return new Promise((_resolve, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
      );
    });
    await coordinator.start();
    const outcome = coordinator.submit("slow", {}, { timeoutMs: 5000 }).catch((e: unknown) => e);
    const [signal] = await started.waitFor(1);
    await clock.advance(4999);
    expect(signal!.aborted).toBe(false);
    await clock.advance(1);
    expect(signal!.aborted).toBe(true);
    expect(await outcome).toBeInstanceOf(TaskTimeoutError);
    expect(coordinator.getStats()).toMatchObject({ timeout: 1, running: 0 });
  });

  it("never runs a task cancelled while queued", async () => {
    const { coordinator } = make({ workerConfig: { maxConcurrentTasks: 1 } });
    const gate = deferred();
    const ran = new Collector<string>();
    coordinator.handler("job", async (data: { name: string }) => {
      ran.push(data.name);
      if (data.name === "first") await gate.promise;
      return data.name;
    });
    await coordinator.start();
    const first = coordinator.submit("job", { name: "first" });
    await ran.waitFor(1);
    const victim = await coordinator.submitAsync("job", { name: "victim" });
    const after = coordinator.submit("job", { name: "after" });
    const cancelled = await coordinator.cancelTask(victim.id);
    expect(cancelled).toMatchObject({ taskId: victim.id, status: "cancelled" });
    gate.resolve();
    await first;
    await after;
    expect(ran.items).toEqual(["first", "after"]);
    expect((await coordinator.waitFor(victim.id)).status).toBe("cancelled");
    await expect(coordinator.cancelTask(victim.id)).resolves.toMatchObject({ status: "cancelled" });
  });

  it("aborts a running task that is cancelled", async () => {
    const { coordinator } = make();
    const started = new Collector<AbortSignal>();
    coordinator.handler("long", (_: unknown, ctx: TaskContext) => {
      started.push(ctx.signal);
      return new Promise((_resolve, reject) =>
        ctx.signal.addEventListener("abort", () => reject(new Error("aborted"))),
      );
    });
    await coordinator.start();
    const outcome = coordinator.submit("long", {}, { id: "long-1" }).catch((e: unknown) => e);
    const [signal] = await started.waitFor(1);
    await expect(coordinator.cancelTask("long-1")).resolves.toMatchObject({ status: "cancelled" });
    expect(await outcome).toBeInstanceOf(TaskCancelledError);
    const aborted = new Collector<boolean>();
    if (signal!.aborted) aborted.push(true);
    else signal!.addEventListener("abort", () => aborted.push(true));
    await aborted.waitFor(1);
  });

  it("checks submit() options, honours waitTimeoutMs, and takes a task id given twice once", async () => {
    const { coordinator, clock } = make();
    const gate = deferred();
    const ran = new Collector<string>();
    coordinator.handler("x", async (data: { n: number }) => {
      ran.push(String(data.n));
      await gate.promise;
      return data.n;
    });
    await coordinator.start();
    const typo = { priorty: 5 } as unknown as Parameters<Coordinator["submit"]>[2];
    const refused = await coordinator.submit("x", { n: 0 }, typo).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toContain('"priorty"');
    const bounded = { waitTimeoutMs: 500 } as unknown as Parameters<Coordinator["submit"]>[2];
    const waited = coordinator.submit("x", { n: 1 }, bounded).catch((e: unknown) => e);
    await ran.waitFor(1);
    await clock.advance(500);
    expect(await waited).toBeInstanceOf(WaitTimeoutError);
    const first = coordinator.submit("x", { n: 2 }, { id: "mine-1" });
    const again = coordinator.submit("x", { n: 2 }, { id: "mine-1" });
    // The same id for other data is another task, which cannot have it.
    await expect(coordinator.submit("x", { n: 3 }, { id: "mine-1" })).rejects.toThrow(TaskIdConflictError);
    gate.resolve();
    expect(await first).toBe(2);
    expect(await again).toBe(2);
    expect(ran.items).toEqual(["1", "2"]);
    expect(coordinator.getStats().submitted).toBe(2);
  });

  it("waits without polling: unknown ids and wait timeouts are typed errors", async () => {
    const { coordinator, clock } = make();
    const gate = deferred();
    coordinator.handler("x", async () => gate.promise);
    await coordinator.start();
    await expect(coordinator.waitFor("no-such-task")).rejects.toBeInstanceOf(UnknownTaskError);
    const task = await coordinator.submitAsync("x", {});
    const waited = coordinator.waitFor(task.id, { timeoutMs: 1000 }).catch((e: unknown) => e);
    await clock.advance(1000);
    expect(await waited).toBeInstanceOf(WaitTimeoutError);
    gate.resolve();
    expect((await coordinator.waitFor(task.id)).status).toBe("completed");
  });

  it("refuses bad input with typed errors and queues nothing", async () => {
    const { coordinator, transport } = make({
      transport: new InMemoryTransport({ maxPayloadBytes: 10_000 }),
    });
    coordinator.handler("ok", async () => 1);
    await coordinator.start();
    await expect(coordinator.submit("nope", {})).rejects.toThrow(NoHandlerError);
    await expect(coordinator.submit("nope", {})).rejects.toThrow(
      /No handler is registered for task type "nope".*"ok"/,
    );
    await expect(coordinator.submit("bad type", {})).rejects.toBeInstanceOf(InvalidNameError);
    await expect(coordinator.submit("a.>", {})).rejects.toBeInstanceOf(InvalidNameError);
    await expect(coordinator.submit("ok", { when: 10n })).rejects.toBeInstanceOf(NotSerializableError);
    await expect(coordinator.submit("ok", { f: () => 1 })).rejects.toThrow(/key "f" is a function/);
    await expect(coordinator.submit("ok", { blob: "x".repeat(20_000) })).rejects.toBeInstanceOf(
      PayloadTooLargeError,
    );
    await expect(coordinator.submit("ok", {}, { tags: ["has space"] })).rejects.toBeInstanceOf(
      InvalidNameError,
    );
    await expect(coordinator.submit("ok", {}, { priority: 7 as TaskPriority })).rejects.toThrow(
      /Invalid priority 7/,
    );
    expect(coordinator.getStats().submitted).toBe(0);
    expect(await transport.depth("w2.default")).toBe(0);
    expect(() => coordinator.handler("ok", async () => 2)).toThrow(/already registered/);
  });

  it("throws QueueFullError past maxQueueSize", async () => {
    const { coordinator } = make({ config: { maxQueueSize: 3, minWorkers: 0 } });
    coordinator.handler("x", async () => 1);
    await coordinator.start();
    for (let i = 0; i < 3; i++) await coordinator.submitAsync("x", {});
    const error = await coordinator.submitAsync("x", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueueFullError);
    expect((error as QueueFullError).retryable).toBe(true);
  });

  it("requires start() before submitting, and cannot restart after stop()", async () => {
    const { coordinator } = make();
    coordinator.handler("x", async () => 1);
    await expect(coordinator.submit("x", {})).rejects.toThrow(/await start\(\) first/);
    await coordinator.start();
    await coordinator.stop();
    await expect(coordinator.start()).rejects.toThrow(/was stopped; create a new one/);
  });

  it("registers with handler(type) as a function registrar too", async () => {
    const { coordinator } = make();
    const fn = async (data: { x: number }) => data.x * 2;
    expect(coordinator.handler("double")(fn)).toBe(fn);
    await coordinator.start();
    expect(await coordinator.submit("double", { x: 21 })).toBe(42);
  });
});
