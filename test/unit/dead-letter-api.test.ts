import {
  Coordinator,
  InMemoryTransport,
  silentLogger,
  UnknownDeadLetterError,
  UnrecoverableError,
  ValidationError,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";

const running: Coordinator[] = [];
afterEach(async () => {
  for (const c of running.splice(0)) await c.stop({ graceful: false });
});

/** A coordinator whose "flaky" handler fails (unrecoverably) until `healed` is set. */
async function start() {
  const state = { healed: false };
  const coordinator = new Coordinator({
    logger: silentLogger,
    transport: new InMemoryTransport(),
    config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
  });
  running.push(coordinator);
  coordinator.handler("flaky", async (data: { n: number }) => {
    if (!state.healed) throw new UnrecoverableError(`flaky ${data.n} broke`);
    return { n: data.n, ok: true };
  });
  coordinator.handler("other", async () => {
    throw new UnrecoverableError("other broke");
  });
  await coordinator.start();
  return { coordinator, state };
}

async function fail(coordinator: Coordinator, type: string, n: number, id?: string): Promise<string> {
  const task = await coordinator.submitAsync(type, { n }, id ? { id } : {});
  const result = await coordinator.waitFor(task.id, { timeoutMs: 20_000 });
  expect(result.status).toBe("failed");
  return task.id;
}

/** Dead-lettering follows the failed event; wait (bounded) until the letters are there. */
async function letters(coordinator: Coordinator, n: number) {
  for (let i = 0; i < 2000; i++) {
    const counts = await coordinator.deadLetters.count();
    if (counts.total >= n) return counts;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`hang guard: expected ${n} dead letters`);
}

describe("coordinator.deadLetters (memory)", () => {
  it("lists a failed task decoded: id, type, data, error, attempts; filters by type; pages", async () => {
    const { coordinator } = await start();
    const ids = [await fail(coordinator, "flaky", 1), await fail(coordinator, "flaky", 2)];
    await fail(coordinator, "other", 3);
    const counts = await letters(coordinator, 3);
    expect(counts.byQueue).toEqual({ "w2.default": 3 }); // one lane carries every type

    const all = await coordinator.deadLetters.list();
    expect(all.letters).toHaveLength(3);
    expect(all.next).toBeUndefined();
    const [first] = all.letters;
    expect(first).toMatchObject({
      queue: "default",
      workQueue: "w2.default",
      decoded: true,
      taskId: ids[0],
      type: "flaky",
      data: { n: 1 },
      error: "flaky 1 broke",
      attempts: 1,
    });
    expect(typeof first!.deadAt).toBe("number");

    const flaky = await coordinator.deadLetters.list({ type: "flaky" });
    expect(flaky.letters.map((l) => l.taskId)).toEqual(ids);
    const p1 = await coordinator.deadLetters.list({ limit: 2 });
    expect(p1.letters).toHaveLength(2);
    const p2 = await coordinator.deadLetters.list({ limit: 2, cursor: p1.next });
    expect(p2.letters.map((l) => l.type)).toEqual(["other"]);
    expect(p2.next).toBeUndefined();
    expect(await coordinator.deadLetters.get(first!.id)).toMatchObject({ taskId: ids[0] });
  });

  it("retries a task with its original id and attempts reset; it completes and can be awaited", async () => {
    const { coordinator, state } = await start();
    const id = await fail(coordinator, "flaky", 7, "order-7");
    await letters(coordinator, 1);
    const [letter] = (await coordinator.deadLetters.list()).letters;
    state.healed = true;
    expect(await coordinator.deadLetters.retry(letter!.id)).toEqual({ taskId: id });
    const result = await coordinator.waitFor(id, { timeoutMs: 20_000 });
    expect(result).toMatchObject({ taskId: "order-7", status: "completed", result: { n: 7, ok: true } });
    expect((await coordinator.getTask(id))?.retryCount).toBe(0);
    expect((await coordinator.deadLetters.count()).total).toBe(0);
    await expect(coordinator.deadLetters.retry(letter!.id)).rejects.toBeInstanceOf(UnknownDeadLetterError);
  });

  it("dead-letters a retried task that fails again, under a new id, not lost", async () => {
    const { coordinator } = await start();
    const id = await fail(coordinator, "flaky", 8);
    await letters(coordinator, 1);
    const [letter] = (await coordinator.deadLetters.list()).letters;
    await coordinator.deadLetters.retry(letter!.id);
    expect((await coordinator.waitFor(id, { timeoutMs: 20_000 })).status).toBe("failed");
    await letters(coordinator, 1);
    const [again] = (await coordinator.deadLetters.list()).letters;
    expect(again).toMatchObject({ taskId: id, attempts: 1, error: "flaky 8 broke" });
    expect(again!.id).not.toBe(letter!.id);
  });

  it("retries all of one type, deletes one, purges", async () => {
    const { coordinator, state } = await start();
    const a = await fail(coordinator, "flaky", 1);
    const b = await fail(coordinator, "flaky", 2);
    await fail(coordinator, "other", 3);
    await fail(coordinator, "other", 4);
    await letters(coordinator, 4);
    state.healed = true;
    expect(await coordinator.deadLetters.retryAll({ type: "flaky" })).toEqual({ retried: 2 });
    for (const id of [a, b])
      expect((await coordinator.waitFor(id, { timeoutMs: 20_000 })).status).toBe("completed");
    const others = (await coordinator.deadLetters.list()).letters;
    expect(others.map((l) => l.type)).toEqual(["other", "other"]);
    await coordinator.deadLetters.delete(others[0]!.id);
    await expect(coordinator.deadLetters.delete(others[0]!.id)).rejects.toBeInstanceOf(
      UnknownDeadLetterError,
    );
    expect(await coordinator.deadLetters.purge()).toEqual({ purged: 1 });
    expect((await coordinator.deadLetters.count()).total).toBe(0);
  });

  it("treats hostile ids as unknown and bad cursors, types and page sizes as typed errors", async () => {
    const { coordinator } = await start();
    await fail(coordinator, "flaky", 1);
    await letters(coordinator, 1);
    for (const id of [
      "",
      "~",
      "1~",
      "~q.default.flaky",
      "1~q.other.flaky",
      "../../etc~x",
      "1~q.default.>",
      "x".repeat(10_000),
    ]) {
      expect(await coordinator.deadLetters.get(id)).toBeUndefined();
      await expect(coordinator.deadLetters.retry(id)).rejects.toBeInstanceOf(UnknownDeadLetterError);
      await expect(coordinator.deadLetters.delete(id)).rejects.toBeInstanceOf(UnknownDeadLetterError);
    }
    for (const cursor of [
      "%%%",
      "bm90IGpzb24",
      Buffer.from('["q.>"]').toString("base64url"),
      "x".repeat(5000),
    ]) {
      await expect(coordinator.deadLetters.list({ cursor })).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(coordinator.deadLetters.list({ limit: 501 })).rejects.toBeInstanceOf(ValidationError);
    await expect(coordinator.deadLetters.list({ type: "a b" })).rejects.toBeInstanceOf(ValidationError);
    expect((await coordinator.deadLetters.count()).total).toBe(1);
  });
});
