/**
 * The worker's side of #16.5 (in memory, with a record of finished tasks in the process): a
 * redelivery of a task whose outcome is recorded does not run its handler (its outcome is sent
 * again, the delivery acked); a redelivery without a recorded outcome runs and is counted as a
 * duplicate run, unless the record shows the attempt before it ended with a retry; an outcome
 * that finds another recorded first is counted. And the coordinator's count of reruns.
 */
import { InMemoryTransport, SimulatedClock, silentLogger } from "fastagentic";
import { describe, expect, it } from "vitest";
import { RECONNECT_CHECK_MS, StartedRuns } from "../../src/cluster/started-runs.js";
import { decodeTaskEvents, type TaskEvent } from "../../src/codec.js";
import { resolveRetryBackoff, resolveWorkerConfig } from "../../src/config.js";
import { HandlerTable } from "../../src/handlers.js";
import { subjects } from "../../src/names.js";
import { TaskStore } from "../../src/task-store.js";
import { WorkerRuns } from "../../src/worker-runs.js";
import { LocalFinishedRecord } from "../../transports/finished-record.js";
import type { Delivery, Transport, TransportStatusEvent } from "../../transports/transport.js";

/**
 * Stands for a broker: its deliveries here are made by hand (a count of 1 for a message that ran
 * before, as a broker that lost its consumers' state sends them), so its counts are not exact.
 */
class BrokerLikeTransport extends InMemoryTransport {
  override readonly exactDeliveryCounts: boolean = false;
}

class RecordingTransport extends BrokerLikeTransport {
  readonly record = new LocalFinishedRecord(60_000);
  finishedRecord() {
    return this.record;
  }
}

function delivery(id: string, deliveryCount: number, retries = 0) {
  const settled: string[] = [];
  const body = new TextEncoder().encode(
    JSON.stringify({
      v: 1,
      id,
      type: "work",
      data: {},
      priority: 5,
      retries,
      timeoutMs: 10_000,
      enqueuedAt: 0,
      queue: "default",
    }),
  );
  const d: Delivery = {
    queue: "q.default.work",
    body,
    deliveryCount,
    priority: 5,
    headers: {},
    ack: async () => void settled.push("ack"),
    nack: async () => void settled.push("nack"),
    inProgress: async () => {},
    deadLetter: async (reason) => void settled.push(`dead ${reason}`),
  };
  return { d, settled };
}

async function setup(withRecord = true, fail = false) {
  const clock = new SimulatedClock();
  const transport = withRecord ? new RecordingTransport({ clock }) : new BrokerLikeTransport({ clock });
  await transport.connect();
  const events: TaskEvent[] = [];
  await transport.subscribe(subjects.taskEvents("default"), (m) => events.push(...decodeTaskEvents(m.body)));
  const runsOf: string[] = [];
  const handlers = new HandlerTable();
  handlers.register("work", async (_data, ctx) => {
    runsOf.push(`${ctx.taskId}#${ctx.attempt}`);
    if (fail) throw new Error("once more");
    return { ok: ctx.attempt };
  });
  const runs = new WorkerRuns({
    workerId: "w1",
    transport,
    clock,
    logger: silentLogger,
    backoff: resolveRetryBackoff(undefined, "backoff"),
    config: resolveWorkerConfig({}),
    handlers,
  });
  return { transport, runs, runsOf, events };
}

/** Lets the record's writes (not awaited by the worker) land. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe("redeliveries and the record of finished tasks (worker side)", () => {
  it("a redelivered finished task does not run again: its outcome is re-sent, the delivery acked", async () => {
    const { runs, runsOf, events, transport } = await setup();
    const first = delivery("t1", 1);
    await runs.process(first.d);
    await settle();
    expect(runsOf).toEqual(["t1#1"]);
    expect(first.settled).toEqual(["ack"]);
    expect((await (transport as RecordingTransport).record.lookup("t1"))?.outcome).not.toBeNull();

    // The ack was lost (the broker restarted uncleanly): the same message comes again.
    const again = delivery("t1", 2);
    await runs.process(again.d);
    await settle();
    expect(runsOf).toEqual(["t1#1"]); // the handler did not run again
    expect(again.settled).toEqual(["ack"]);
    expect(runs.skippedFinished).toBe(1);
    expect(runs.redeliveredRuns).toBe(0);
    const outcomes = events.filter((e) => e.taskId === "t1" && e.kind === "completed");
    expect(outcomes.length).toBe(2); // the first, and the same one re-sent
    expect(outcomes[1]).toMatchObject({ workerId: "w1", attempt: 1, result: { ok: 1 } });
  });

  it("a redelivery without a recorded outcome runs, and is counted as a duplicate run", async () => {
    const { runs, runsOf } = await setup();
    const { d } = delivery("t2", 2); // its first delivery died with its worker, before any outcome
    await runs.process(d);
    await settle();
    expect(runsOf).toEqual(["t2#2"]);
    expect(runs.redeliveredRuns).toBe(1);
    expect(runs.skippedFinished).toBe(0);
  });

  it("a retry is no duplicate: the record says the attempt before it ended with a retry", async () => {
    const { runs, runsOf } = await setup(true, true);
    await runs.process(delivery("t3", 1, 2).d); // fails: retrying (recorded)
    await settle();
    await runs.process(delivery("t3", 2, 2).d);
    await settle();
    expect(runsOf).toEqual(["t3#1", "t3#2"]);
    expect(runs.redeliveredRuns).toBe(0);
    // Attempt 2's delivery came again (its worker died): attempt 1's retry does not cover it.
    await runs.process(delivery("t3", 3, 2).d);
    expect(runs.redeliveredRuns).toBe(0); // attempt 2 did end with a retry (recorded) before it
  });

  it("an outcome that finds another recorded first is counted (two runs of one task at once)", async () => {
    const { runs, transport } = await setup();
    await (transport as RecordingTransport).record.recordRetry("t4", 0); // known, no outcome yet
    const both = [delivery("t4", 2), delivery("t4", 3)];
    await Promise.all(both.map((b) => runs.process(b.d)));
    await settle();
    expect(runs.redeliveredRuns).toBe(2);
    expect(runs.ranAfterRecorded).toBe(1);
  });

  it("without a record: a redelivery runs; counted for a task without retries, and past its attempts", async () => {
    const { runs, runsOf } = await setup(false);
    await runs.process(delivery("t5", 1).d);
    await runs.process(delivery("t5", 2).d);
    expect(runsOf).toEqual(["t5#1", "t5#2"]); // nothing to tell it finished: it runs again
    expect(runs.redeliveredRuns).toBe(1);
    await runs.process(delivery("t6", 2, 1).d); // a retry or a redelivery: cannot tell, not counted
    await runs.process(delivery("t6", 3, 1).d); // past its 2 attempts: a redelivery
    expect(runs.redeliveredRuns).toBe(2);
  });
});

describe("first deliveries that ran before (a broker that lost its consumers' state)", () => {
  it("a first delivery of a task this process started before is a re-run; a finished one is not run", async () => {
    const { runs, runsOf } = await setup();
    await runs.process(delivery("t7", 1).d);
    await settle();
    const again = delivery("t7", 1); // the same message, delivered again as new
    await runs.process(again.d);
    expect(runsOf).toEqual(["t7#1"]);
    expect(again.settled).toEqual(["ack"]);
    expect(runs.skippedFinished).toBe(1);

    const { runs: plain, runsOf: plainRuns } = await setup(false);
    await plain.process(delivery("t8", 1).d);
    await plain.process(delivery("t8", 1).d);
    expect(plainRuns).toEqual(["t8#1", "t8#1"]);
    expect(plain.redeliveredRuns).toBe(1);
  });

  it("for a while after the transport reconnects, every delivery is checked (simulated clock)", () => {
    let listener: (e: TransportStatusEvent) => void = () => {};
    const transport = {
      onStatus: (l: typeof listener) => {
        listener = l;
        return () => {};
      },
    } as unknown as Transport;
    let now = 0;
    const started = StartedRuns.of(transport, () => now);
    expect(started.afterReconnect).toBe(false);
    listener({ state: "connected" });
    expect(started.afterReconnect).toBe(false); // the first connection is no reconnect
    listener({ state: "reconnecting" });
    listener({ state: "connected" });
    expect(started.afterReconnect).toBe(true);
    now += RECONNECT_CHECK_MS;
    expect(started.afterReconnect).toBe(false);
    expect(started.startedBefore("x")).toBe(false);
    expect(started.startedBefore("x")).toBe(true);
  });

  it("where delivery counts are exact (in memory), nothing is remembered: a first delivery is a first run", () => {
    const transport = new InMemoryTransport();
    expect(transport.exactDeliveryCounts).toBe(true);
    const started = StartedRuns.of(transport, () => 0);
    expect(started.startedBefore("x")).toBe(false);
    expect(started.startedBefore("x")).toBe(false);
  });
});

describe("the coordinator's count of reruns (TaskStore)", () => {
  const task = (id: string) => ({
    id,
    type: "work",
    data: {},
    priority: 5 as const,
    status: "pending" as const,
    retries: 0,
    retryCount: 0,
    timeoutMs: 0,
    createdAt: 0,
    tags: [],
    metadata: {},
  });

  it("counts a run started while another run of the task was running, or after it finished", () => {
    const store = new TaskStore(new SimulatedClock(), 100);
    store.addAndMove(task("a") as never, "ENQUEUE");
    store.apply({ kind: "started", taskId: "a", at: 1, attempt: 1, workerId: "w1" } as never);
    expect(store.counters.reruns).toBe(0);
    store.apply({ kind: "started", taskId: "a", at: 2, attempt: 2, workerId: "w2" } as never); // redelivered
    expect(store.counters.reruns).toBe(1);
    // Delivered again as new (a broker that lost its consumer's state): same worker, same attempt.
    store.apply({ kind: "started", taskId: "a", at: 2, attempt: 2, workerId: "w2" } as never);
    expect(store.counters.reruns).toBe(2);
    store.apply({ kind: "completed", taskId: "a", at: 3, attempt: 2, workerId: "w2" } as never);
    store.apply({ kind: "started", taskId: "a", at: 4, attempt: 3, workerId: "w3" } as never); // after its outcome
    expect(store.counters.reruns).toBe(3);
    store.apply({ kind: "completed", taskId: "a", at: 5, attempt: 3, workerId: "w3" } as never);
    expect(store.counters.duplicates).toBe(1);
  });

  it("does not count the next attempt after a retry", () => {
    const store = new TaskStore(new SimulatedClock(), 100);
    store.addAndMove({ ...task("b"), retries: 1 } as never, "ENQUEUE");
    store.apply({ kind: "started", taskId: "b", at: 1, attempt: 1, workerId: "w1" } as never);
    store.apply({ kind: "retrying", taskId: "b", at: 2, attempt: 1, workerId: "w1", error: "x" } as never);
    store.apply({ kind: "started", taskId: "b", at: 3, attempt: 2, workerId: "w1" } as never);
    expect(store.counters.reruns).toBe(0);
  });
});
