import {
  InMemoryTransport,
  QueueFullError,
  SimulatedClock,
  StateError,
  silentLogger,
  TaskPriority,
  TaskQueue,
  type Transport,
  UnknownTaskError,
  WaitTimeoutError,
  Worker,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { submitAndWait } from "../../src/submit.js";
import { overriding } from "../helpers/tap.js";

const queues: TaskQueue[] = [];
afterEach(async () => {
  for (const q of queues.splice(0)) await q.close();
});

function make(maxQueueSize = 10_000) {
  const clock = new SimulatedClock();
  const transport = new InMemoryTransport({ clock });
  const queue = new TaskQueue({
    maxQueueSize,
    transport,
    clock,
    retryBackoff: { initialMs: 1000, multiplier: 2, maxMs: 10_000, jitter: 0 },
  });
  queues.push(queue);
  return { queue, clock, transport };
}

describe("TaskQueue (the seed's API)", () => {
  it("enqueues with priority, timeout, retries and metadata", async () => {
    const { queue } = make();
    const task = await queue.enqueue({
      taskType: "analyze",
      data: { document: "..." },
      priority: TaskPriority.HIGH,
      timeoutMs: 60_000,
      retries: 3,
      metadata: { userId: "user-123" },
    });
    expect(task).toMatchObject({
      type: "analyze",
      data: { document: "..." },
      priority: 10,
      status: "queued",
      timeoutMs: 60_000,
      retries: 3,
      retryCount: 0,
      tags: [],
      metadata: { userId: "user-123" },
    });
    expect(task.id).toMatch(/^task-/);
    expect(queue.size).toBe(1);
  });

  it("dequeues highest priority first, FIFO within a priority, then completes", async () => {
    const { queue } = make();
    const low = await queue.enqueue({ taskType: "analyze", data: 1, priority: TaskPriority.LOW });
    const n1 = await queue.enqueue({ taskType: "analyze", data: 2 });
    const crit = await queue.enqueue({ taskType: "analyze", data: 3, priority: TaskPriority.CRITICAL });
    const n2 = await queue.enqueue({ taskType: "analyze", data: 4 });
    const order: string[] = [];
    for (let i = 0; i < 4; i++) {
      const t = await queue.dequeue({ workerId: "worker-1", timeoutMs: 5000 });
      expect(t).toMatchObject({ status: "running", workerId: "worker-1" });
      order.push(t!.id);
      const done = await queue.complete(t!.id, { analysis: `r${t!.data}` });
      expect(done).toMatchObject({ taskId: t!.id, status: "completed", result: { analysis: `r${t!.data}` } });
    }
    expect(order).toEqual([crit.id, n1.id, n2.id, low.id]);
    expect(queue.getStats()).toMatchObject({ completed: 4, queueSize: 0, running: 0 });
  });

  it("dequeue waits for a task, and resolves null after its timeout", async () => {
    const { queue, clock } = make();
    const waiting = queue.dequeue({ workerId: "w", timeoutMs: 5000, types: ["analyze"] });
    const task = await queue.enqueue({ taskType: "analyze", data: {} });
    expect((await waiting)?.id).toBe(task.id);
    const empty = queue.dequeue({ workerId: "w", timeoutMs: 5000 });
    await clock.advance(5000);
    expect(await empty).toBeNull();
  });

  it("fail() requeues with back-off while retries remain, then fails for good", async () => {
    const { queue, clock } = make();
    const task = await queue.enqueue({ taskType: "analyze", data: {}, retries: 1 });
    const first = await queue.dequeue({ workerId: "w", timeoutMs: 1 });
    const r1 = await queue.fail(first!.id, "Processing failed");
    expect(r1).toMatchObject({ status: "queued", error: "Processing failed" });
    const early = queue.dequeue({ workerId: "w", timeoutMs: 999 });
    await clock.advance(999);
    expect(await early).toBeNull();
    const second = queue.dequeue({ workerId: "w" });
    await clock.advance(1);
    const again = await second;
    expect(again).toMatchObject({ id: task.id, retryCount: 1 });
    const r2 = await queue.fail(again!.id, new Error("still failing"));
    expect(r2).toMatchObject({ status: "failed", error: "still failing" });
    expect(await queue.waitForTask(task.id)).toMatchObject({ status: "failed" });
  });

  it("never dequeues a cancelled task", async () => {
    const { queue } = make();
    const a = await queue.enqueue({ taskType: "analyze", data: "a" });
    const b = await queue.enqueue({ taskType: "analyze", data: "b" });
    expect(await queue.cancel(a.id)).toMatchObject({ taskId: a.id, status: "cancelled" });
    const next = await queue.dequeue({ workerId: "w", timeoutMs: 100 });
    expect(next?.id).toBe(b.id);
    expect(await queue.waitForTask(a.id)).toMatchObject({ status: "cancelled" });
  });

  it("waitForTask resolves on completion, times out, and knows unknown ids", async () => {
    const { queue, clock } = make();
    const task = await queue.enqueue({ taskType: "analyze", data: {} });
    const waiting = queue.waitForTask(task.id, { timeoutMs: 30_000 });
    const t = await queue.dequeue({ workerId: "w" });
    await queue.complete(t!.id, "done");
    expect(await waiting).toMatchObject({ status: "completed", result: "done" });
    const other = await queue.enqueue({ taskType: "analyze", data: {} });
    const late = queue.waitForTask(other.id, { timeoutMs: 30_000 }).catch((e: unknown) => e);
    await clock.advance(30_000);
    expect(await late).toBeInstanceOf(WaitTimeoutError);
    await expect(queue.waitForTask("nope")).rejects.toBeInstanceOf(UnknownTaskError);
  });

  it("throws QueueFullError at maxQueueSize, and accepts again once a task left", async () => {
    const { queue } = make(2);
    await queue.enqueue({ taskType: "analyze", data: 1 });
    await queue.enqueue({ taskType: "analyze", data: 2 });
    await expect(queue.enqueue({ taskType: "analyze", data: 3 })).rejects.toBeInstanceOf(QueueFullError);
    const t = await queue.dequeue({ workerId: "w" });
    await queue.complete(t!.id, null);
    await expect(queue.enqueue({ taskType: "analyze", data: 3 })).resolves.toMatchObject({
      status: "queued",
    });
  });

  it("keeps queues with different names on one transport independent", async () => {
    const clock = new SimulatedClock();
    const transport = new InMemoryTransport({ clock });
    const a = new TaskQueue({ name: "a", transport, clock });
    const b = new TaskQueue({ name: "b", transport, clock });
    queues.push(a, b);
    await a.enqueue({ taskType: "analyze", data: "for a" });
    const none = b.dequeue({ workerId: "w", types: ["analyze"], timeoutMs: 10 });
    await clock.advance(10);
    expect(await none).toBeNull();
    expect((await a.dequeue({ workerId: "w" }))?.data).toBe("for a");
  });

  it("complete() on a task this queue did not hand out is a clear error; a finished one is idempotent", async () => {
    const { queue } = make();
    const task = await queue.enqueue({ taskType: "analyze", data: {} });
    await expect(queue.complete(task.id, 1)).rejects.toBeInstanceOf(StateError);
    await expect(queue.complete("nope", 1)).rejects.toBeInstanceOf(UnknownTaskError);
    const t = await queue.dequeue({ workerId: "w" });
    await queue.complete(t!.id, 1);
    await expect(queue.complete(t!.id, 2)).resolves.toMatchObject({ status: "completed", result: 1 });
  });

  it("dead-letters undecodable bytes on its queue and counts them", async () => {
    const { queue, transport } = make();
    await transport.enqueue("w2.default", new TextEncoder().encode("{garbage"), { priority: 5 });
    const good = await queue.enqueue({ taskType: "analyze", data: "ok" });
    const t = await queue.dequeue({ workerId: "w", timeoutMs: 100 });
    expect(t?.id).toBe(good.id);
    expect(queue.malformedMessages).toBe(1);
    expect(await transport.depth("dead.w2.default")).toBe(1);
  });
});

describe("de-duplication of enqueues", () => {
  it("gives the transport a caller's own task id as dedupId, and no dedupId for a generated id", async () => {
    const clock = new SimulatedClock();
    const inner = new InMemoryTransport({ clock });
    const dedupIds: Array<string | undefined> = [];
    const transport = overriding(inner, {
      enqueue: (queue, body, options) => {
        dedupIds.push(options.dedupId);
        return inner.enqueue(queue, body, options);
      },
    });
    const queue = new TaskQueue({ transport, clock, maxFinishedTasks: 0 });
    queues.push(queue);
    const generated = await queue.enqueue({ taskType: "t", data: 1 });
    await queue.enqueue({ taskType: "t", data: 2, id: "order-42" });
    // A generated id cannot come again; a caller's own can: the transport drops the repeat.
    expect(dedupIds).toEqual([undefined, "order-42"]);
    expect(generated.id).toMatch(/^task-/);
    for (let i = 0; i < 2; i++) {
      const task = await queue.dequeue({ workerId: "w", timeoutMs: 0 });
      await queue.complete(task!.id, "done"); // finished and, with maxFinishedTasks 0, forgotten here
    }
    await queue.enqueue({ taskType: "t", data: 2, id: "order-42" });
    expect(dedupIds).toEqual([undefined, "order-42", "order-42"]);
    expect(await inner.depth("w2.default")).toBe(0); // within the transport's window: dropped
  });
});

describe("submit, when the outcome arrives before the enqueue is confirmed", () => {
  it("still gets the result with maxFinishedTasks 0 (the wait starts once the task is stored)", async () => {
    const inner = new InMemoryTransport();
    let release!: () => void;
    const finished = new Promise<void>((resolve) => (release = resolve));
    // The client's transport confirms an enqueue only once the task has finished: a broker's
    // confirm can come after a quick worker's outcome.
    const slowConfirms = overriding(inner, {
      enqueue: async (...args: Parameters<Transport["enqueue"]>) => {
        await inner.enqueue(...args);
        await finished;
      },
    });
    const queue = new TaskQueue({ transport: slowConfirms, maxFinishedTasks: 0 });
    queues.push(queue);
    queue.onTaskFinished(() => release());
    const worker = new Worker({ transport: inner, logger: silentLogger });
    worker.handler("double", async (data: { x: number }) => data.x * 2);
    await worker.start();
    try {
      await expect(submitAndWait(queue, "double", { x: 21 }, {})).resolves.toBe(42);
    } finally {
      await worker.stop();
    }
  });
});
