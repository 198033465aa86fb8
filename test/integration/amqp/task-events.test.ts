/**
 * On RabbitMQ a task's events go to the inbox of the client that enqueued it (its subscription's
 * own queue, through the default exchange), not through the topic exchange to every client of the
 * queue: each client gets its own tasks' events only, and still every one of them.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { decodeTaskEvents } from "../../../src/codec.js";
import { silentLogger } from "../../../src/logger.js";
import { TaskQueue } from "../../../src/task-queue.js";
import { Worker } from "../../../src/worker.js";
import type { AmqpTransport } from "../../../transports/amqp/index.js";
import type { Transport } from "../../../transports/transport.js";
import { tapSubscriptions } from "../../helpers/tap.js";
import { amqpAvailable, testTransport } from "./amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./broker-lock.js";

/** A client's transport that records the task ids of the task events its subscriptions receive. */
function recording(t: AmqpTransport): { transport: Transport; taskIds: string[] } {
  const taskIds: string[] = [];
  const transport = tapSubscriptions(t, (m) => {
    if (m.subject.endsWith(".task")) for (const event of decodeTaskEvents(m.body)) taskIds.push(event.taskId);
  });
  return { transport, taskIds };
}

describe("AMQP task events", () => {
  let ok = false;
  let release: (() => Promise<void>) | undefined;
  const stops: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    ok = await amqpAvailable();
    if (ok) release = await lockBroker(); // another file may be stopping the broker meanwhile
  }, BROKER_LOCK_WAIT_MS + 10_000);

  afterAll(async () => {
    await release?.();
  });

  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  it("go to the client that enqueued the task, not to every client of the queue", async ({ skip }) => {
    if (!ok) skip();
    const workerTransport = testTransport();
    const namespace = workerTransport.namespace;
    const worker = new Worker({ transport: workerTransport, logger: silentLogger });
    worker.handler("double", async (data: { x: number }) => data.x * 2);
    stops.push(
      () => workerTransport.close(),
      () => worker.stop(),
    );
    await worker.start();

    const a = recording(testTransport({ namespace, deleteOnClose: false }));
    const b = recording(testTransport({ namespace, deleteOnClose: false }));
    const queueA = new TaskQueue({ transport: a.transport });
    const queueB = new TaskQueue({ transport: b.transport });
    stops.push(
      () => a.transport.close(),
      () => b.transport.close(),
      () => queueA.close(),
      () => queueB.close(),
    );
    await queueA.start();
    await queueB.start();

    const fromA = await queueA.enqueue({ taskType: "double", data: { x: 2 } });
    expect(await queueA.waitForTask(fromA.id, { timeoutMs: 20_000 })).toMatchObject({
      status: "completed",
      result: 4,
    });
    const fromB = await queueB.enqueue({ taskType: "double", data: { x: 3 } });
    expect(await queueB.waitForTask(fromB.id, { timeoutMs: 20_000 })).toMatchObject({
      status: "completed",
      result: 6,
    });
    // The worker published A's outcome before B's, on one channel: had it gone to every client, B
    // would have received it before its own.
    expect(new Set(a.taskIds)).toEqual(new Set([fromA.id]));
    expect(new Set(b.taskIds)).toEqual(new Set([fromB.id]));
  });
});
