/**
 * The dead-letter REST routes over a real socket (memory transport): list with counts, inspect,
 * retry one (it completes), retry all, delete, purge; hostile ids, queries and cursors get typed
 * `{ error: { code, message } }` answers.
 */
import { App, Coordinator, silentLogger, UnrecoverableError } from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "./http-helpers.js";

let app: App;
let base: string;
let coordinator: Coordinator;
const state = { healed: false };

beforeAll(async () => {
  coordinator = new Coordinator({ config: { minWorkers: 1, autoScale: false }, logger: silentLogger });
  coordinator.handler("flaky", async (data: { n: number }) => {
    if (!state.healed) throw new UnrecoverableError(`flaky ${data.n} broke`);
    return { n: data.n };
  });
  app = new App({ appLogger: silentLogger });
  app.onStartup(() => coordinator.start());
  app.onShutdown(() => coordinator.stop());
  app.mountCoordinator(coordinator, { prefix: "/api" });
  base = await app.listen({ port: 0 });
});

afterAll(async () => {
  await app?.close();
});

async function deadTask(n: number): Promise<string> {
  const r = await call(base, "POST", "/api/tasks", { body: { type: "flaky", data: { n }, wait: true } });
  expect(r.status).toBe(500);
  const taskId = r.body.error.taskId as string;
  for (let i = 0; i < 2000; i++) {
    const list = await call(base, "GET", "/api/dead-letters");
    if (list.body.letters.some((l: { taskId: string }) => l.taskId === taskId)) return taskId;
  }
  throw new Error("hang guard: the failed task never showed among the dead letters");
}

describe("dead-letter routes", () => {
  it("lists, inspects, retries (the task completes), deletes and purges", async () => {
    const a = await deadTask(1);
    const b = await deadTask(2);
    const c = await deadTask(3);
    const list = await call(base, "GET", "/api/dead-letters?type=flaky&limit=2");
    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({ queue: "default", total: 3, byQueue: { "w2.default": 3 } });
    expect(list.body.letters.map((l: { taskId: string }) => l.taskId)).toEqual([a, b]);
    const rest = await call(base, "GET", `/api/dead-letters?limit=2&cursor=${list.body.next}`);
    expect(rest.body.letters.map((l: { taskId: string }) => l.taskId)).toEqual([c]);
    expect(rest.body.next).toBeUndefined();

    const [first, second] = list.body.letters as Array<{ id: string }>;
    const one = await call(base, "GET", `/api/dead-letters/${encodeURIComponent(first!.id)}`);
    expect(one.body).toMatchObject({
      taskId: a,
      type: "flaky",
      data: { n: 1 },
      error: "flaky 1 broke",
      attempts: 1,
    });

    state.healed = true;
    const retried = await call(base, "POST", `/api/dead-letters/${encodeURIComponent(first!.id)}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ retried: true, taskId: a });
    expect((await coordinator.waitFor(a, { timeoutMs: 20_000 })).status).toBe("completed");
    const task = await call(base, "GET", `/api/tasks/${a}`);
    expect(task.body).toMatchObject({ id: a, status: "completed", result: { n: 1 } });
    const again = await call(base, "POST", `/api/dead-letters/${encodeURIComponent(first!.id)}/retry`);
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe("FA_UNKNOWN_DEAD_LETTER");

    const deleted = await call(base, "DELETE", `/api/dead-letters/${encodeURIComponent(second!.id)}`);
    expect(deleted.body).toEqual({ deleted: true, id: second!.id });
    expect((await call(base, "DELETE", `/api/dead-letters/${encodeURIComponent(second!.id)}`)).status).toBe(
      404,
    );
    const purged = await call(base, "DELETE", "/api/dead-letters");
    expect(purged.body).toEqual({ purged: 1 });
    expect((await call(base, "GET", "/api/dead-letters")).body.total).toBe(0);
  });

  it("retries all letters of a type", async () => {
    state.healed = false;
    const ids = [await deadTask(4), await deadTask(5)];
    state.healed = true;
    const r = await call(base, "POST", "/api/dead-letters/retry?type=flaky");
    expect(r.body).toEqual({ retried: 2 });
    for (const id of ids)
      expect((await coordinator.waitFor(id, { timeoutMs: 20_000 })).status).toBe("completed");
  });

  it("answers hostile ids, queries and cursors with typed errors", async () => {
    for (const path of [
      // (Malformed percent-encoding, e.g. %FF%FE, is Fastify's FST_ERR_BAD_URL: issue 15 row 10, branch hostile.)
      "/api/dead-letters/..%2F..%2Fetc",
      `/api/dead-letters/${"x".repeat(400)}`,
      "/api/dead-letters/1~q.other.flaky",
    ]) {
      const r = await call(base, "GET", path);
      expect(r.status, path).toBeGreaterThanOrEqual(400);
      expect(r.status, path).toBeLessThan(500);
      expect(typeof r.body.error?.code, path).toBe("string");
    }
    for (const query of [
      "limit=abc",
      "limit=0",
      "limit=100000",
      "limit=1e3",
      "foo=1",
      "type=a%20b",
      "cursor=%25%25",
      "limit=1&limit=2",
    ]) {
      const r = await call(base, "GET", `/api/dead-letters?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body.error.code, query).toMatch(/^FA_/);
    }
    const bad = await call(base, "POST", "/api/dead-letters/1~q.default.flaky/retry", { body: "{not json" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("FA_INVALID_JSON");
  });
});
