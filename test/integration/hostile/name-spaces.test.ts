/**
 * No user-chosen name can equal an internal one (issue 15 row 1): a worker with the tag "dead" does
 * not consume the dead letters of the untagged queue of its type (a dead-lettered task runs once and
 * stays a dead letter), and a task submitted with the tag "dead" runs on that worker instead of
 * landing among dead letters; on every transport.
 */
import { Coordinator, silentLogger, TaskFailedError, UnrecoverableError, WorkerPool } from "fastagentic";
import { afterEach, expect, it } from "vitest";
import type { Transport } from "../../../transports/transport.js";
import { deadLetterQueueOf } from "../../../transports/transport.js";
import { describeEachTransport } from "./each-transport.js";

const namespaceOf = (t: Transport) => (t as unknown as { namespace: string }).namespace;

describeEachTransport("the tag dead", (t) => {
  const open: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  it("does not make a worker run dead letters, nor a task land among them", async ({ skip }) => {
    if (!t.ready) skip();
    const transport = t.make();
    const runs: number[] = [];
    const coordinator = new Coordinator({
      transport,
      config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
      logger: silentLogger,
    });
    // Task 2 (tagged "dead") completes; the others fail for good and become dead letters. A worker
    // with tags also serves untagged tasks, so either worker may run tasks 1 and 3.
    const job = async (data: { n: number }) => {
      runs.push(data.n);
      if (data.n === 2) return data.n;
      throw new UnrecoverableError("refused");
    };
    coordinator.handler("job", job);
    open.push(async () => {
      await coordinator.stop();
      await transport.close();
    });
    await coordinator.start();
    const peer = t.kind === "memory" ? transport : t.make(namespaceOf(transport));
    const tagged = new WorkerPool({
      transport: peer,
      minWorkers: 1,
      logger: silentLogger,
      config: { tags: ["dead"] },
    });
    tagged.handler("job", job);
    open.push(async () => {
      await tagged.stop();
      if (peer !== transport) await peer.close();
    });
    await tagged.start();

    // Untagged: fails on the untagged worker and becomes a dead letter, which nobody runs again.
    await expect(coordinator.submit("job", { n: 1 })).rejects.toBeInstanceOf(TaskFailedError);
    // Tagged "dead": a task like any other, run by the worker carrying the tag.
    expect(await coordinator.submit("job", { n: 2 }, { tags: ["dead"] })).toBe(2);
    // One more untagged task after it: had the tagged worker consumed the dead letters, task 1 would
    // have run again by now (the dead-letter queue was served by the worker that ran task 2).
    await expect(coordinator.submit("job", { n: 3 })).rejects.toBeInstanceOf(TaskFailedError);
    // The outcome is published before the message is dead-lettered: wait (bounded) for both letters.
    let dead: number[] = [];
    for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
      dead = (await coordinator.deadLetters.list()).letters.map((l) => (l.data as { n: number }).n).sort();
      if (dead.length >= 2) break;
    }
    expect(dead).toEqual([1, 3]);
    expect(runs.sort()).toEqual([1, 2, 3]); // each ran once: no dead letter ran again
    expect(deadLetterQueueOf("q.default.job")).not.toBe("q.default.job.dead");
  });
});
