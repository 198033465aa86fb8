/**
 * The App and the coordinator's REST surface over a real socket (port 0, real fetch): submits,
 * waits, cancels, bad requests, the status of each task outcome, metrics, and agent endpoints.
 */
import { App, Coordinator, HttpError, silentLogger, type TaskContext } from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deferred } from "../helpers/async.js";

const BODY_LIMIT = 4096;

interface Reply {
  status: number;
  headers: Headers;
  body: { error?: { code: string; message: string; taskId?: string; status?: string } } & Record<
    string,
    unknown
  >;
  text: string;
}

let app: App;
let base: string;
let coordinator: Coordinator;
let idle: Coordinator;
let blockStarted = deferred();

async function call(
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<Reply> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers = { "content-type": contentType };
  }
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  let parsed: Reply["body"] = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (metrics)
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

const post = (path: string, body?: unknown, contentType?: string) => call("POST", path, body, contentType);

beforeAll(async () => {
  coordinator = new Coordinator({ config: { minWorkers: 1, autoScale: false }, logger: silentLogger });
  coordinator.handler("echo", async (data) => data);
  coordinator.handler("fail", async () => {
    throw new Error("the model refused");
  });
  coordinator.handler("block", (_data, ctx: TaskContext) => {
    blockStarted.resolve();
    return new Promise((_resolve, reject) =>
      ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
    );
  });
  // A coordinator with no workers: its tasks stay queued, and its queue holds one.
  idle = new Coordinator({
    config: { minWorkers: 0, maxQueueSize: 1, autoScale: false },
    logger: silentLogger,
  });
  idle.handler("echo", async (data) => data);

  app = new App({ title: "Test Agents", bodyLimit: BODY_LIMIT, appLogger: silentLogger });
  app.onStartup(() => coordinator.start());
  app.onStartup(() => idle.start());
  app.onShutdown(() => coordinator.stop({ graceful: true }));
  app.onShutdown(() => idle.stop());
  app.mountCoordinator(coordinator, { prefix: "/" });
  app.mountCoordinator(idle, { prefix: "/idle", metrics: false });
  app.agentEndpoint({ path: "/run" }, async (request) => coordinator.submit("echo", request.data));
  app.agentEndpoint({ path: "/run-failing" }, async (request) => coordinator.submit("fail", request.data));
  app.agentEndpoint({ path: "/crash" }, async () => {
    throw new Error("secret database password in this message");
  });
  app.agentEndpoint({ path: "/teapot", method: "GET" }, async (request) => {
    if (request.data && (request.data as { brew?: string }).brew === "coffee") {
      throw new HttpError(418, "I'm a teapot: ask for tea.", { code: "TEAPOT" });
    }
    return "tea";
  });
  base = await app.listen({ port: 0 });
});

afterAll(async () => {
  await app.close();
});

describe("App", () => {
  it("listens on a free port, after running the startup hooks", () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(coordinator.state).toBe("running");
  });

  it("serves agent endpoints: request.data is the JSON body, the return value is JSON", async () => {
    const reply = await post("/run", { question: "why?" });
    expect(reply.status).toBe(200);
    expect(reply.headers.get("content-type")).toMatch(/^application\/json/);
    expect(reply.body).toEqual({ question: "why?" });
    const tea = await call("GET", "/teapot");
    expect(tea.text).toBe('"tea"');
  });

  it("maps a failed task to 500 with the task's error, and other errors to 500 without details", async () => {
    const failed = await post("/run-failing", {});
    expect(failed.status).toBe(500);
    expect(failed.body.error).toMatchObject({ code: "FA_TASK_FAILED", status: "failed" });
    expect(failed.body.error?.message).toContain("the model refused");
    const crash = await post("/crash", {});
    expect(crash.status).toBe(500);
    expect(crash.body.error?.code).toBe("FA_INTERNAL");
    expect(crash.text).not.toContain("secret");
    expect(crash.text).not.toMatch(/\n\s+at /);
  });

  it("answers an HttpError with its status", async () => {
    const reply = await call("GET", "/teapot?brew=coffee");
    expect(reply.status).toBe(418);
    expect(reply.body).toEqual({ error: { code: "TEAPOT", message: "I'm a teapot: ask for tea." } });
  });

  it("answers unknown routes with 404 in the same error shape", async () => {
    const reply = await call("GET", "/nowhere");
    expect(reply.status).toBe(404);
    expect(reply.body.error?.code).toBe("FA_NOT_FOUND");
  });
});

describe("POST /tasks", () => {
  it("queues a task: 202, the task and its Location", async () => {
    const reply = await post("/tasks", {
      type: "echo",
      data: { n: 1 },
      priority: "high",
      metadata: { user: "u1" },
    });
    expect(reply.status).toBe(202);
    expect(reply.body).toMatchObject({ type: "echo", priority: 10, metadata: { user: "u1" } });
    const id = reply.body["id"] as string;
    expect(reply.headers.get("location")).toBe(`/tasks/${id}`);
    await coordinator.waitFor(id);
    const task = await call("GET", `/tasks/${id}`);
    expect(task.status).toBe(200);
    expect(task.body).toMatchObject({ id, status: "completed", result: { n: 1 } });
  });

  it("with wait: true answers 200 with the result", async () => {
    const reply = await post("/tasks", { type: "echo", data: [1, 2], wait: true });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ status: "completed", result: [1, 2] });
  });

  it("maps each task outcome to a status: failed 500, timeout 504, cancelled 409", async () => {
    const failed = await post("/tasks", { type: "fail", wait: true });
    expect(failed.status).toBe(500);
    expect(failed.body.error).toMatchObject({ code: "FA_TASK_FAILED", status: "failed" });
    expect(failed.body.error?.message).toContain("the model refused");

    const timedOut = await post("/tasks", { type: "block", timeoutMs: 20, wait: true });
    expect(timedOut.status).toBe(504);
    expect(timedOut.body.error).toMatchObject({ code: "FA_TASK_TIMEOUT", status: "timeout" });

    blockStarted = deferred();
    const waiting = post("/tasks", { type: "block", id: "cancel-me", wait: true });
    await blockStarted.promise;
    const cancelled = await call("DELETE", "/tasks/cancel-me");
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ taskId: "cancel-me", status: "cancelled" });
    const outcome = await waiting;
    expect(outcome.status).toBe(409);
    expect(outcome.body.error).toMatchObject({ code: "FA_TASK_CANCELLED", taskId: "cancel-me" });
  });

  it("answers 202 with the task when the wait runs out before the task finishes", async () => {
    const reply = await post("/idle/tasks", { type: "echo", wait: true, waitTimeoutMs: 0 });
    expect(reply.status).toBe(202);
    expect(reply.body).toMatchObject({ status: "queued" });
    expect(reply.headers.get("location")).toBe(`/idle/tasks/${reply.body["id"]}`);
  });

  it("answers 503 with Retry-After when the queue is full", async () => {
    const full = await post("/idle/tasks", { type: "echo" });
    expect(full.status).toBe(503);
    expect(full.headers.get("retry-after")).toBe("1");
    expect(full.body.error?.code).toBe("FA_QUEUE_FULL");
  });

  it.each([
    ["invalid JSON", "{not json", 400, "FA_INVALID_JSON"],
    ["an empty body", "", 400, "FA_BAD_REQUEST"],
    ["a body that is not an object", [], 400, "FA_BAD_REQUEST"],
    ["no type", { data: 1 }, 400, "FA_BAD_REQUEST"],
    ["a type of the wrong type", { type: 5 }, 400, "FA_BAD_REQUEST"],
    ["a timeout as a string", { type: "echo", timeoutMs: "100" }, 400, "FA_BAD_REQUEST"],
    ["an unknown priority", { type: "echo", priority: "urgent" }, 400, "FA_BAD_REQUEST"],
    ["an unknown field", { type: "echo", timeout: 5 }, 400, "FA_BAD_REQUEST"],
    ["an unknown type", { type: "translate" }, 400, "FA_NO_HANDLER"],
    ["an invalid type name", { type: "a.b" }, 400, "FA_INVALID_NAME"],
    ["an invalid tag", { type: "echo", tags: ["a b"] }, 400, "FA_INVALID_NAME"],
  ])("rejects %s with %i %s", async (_what, body, status, code) => {
    const reply = await post("/tasks", body);
    expect(reply.status).toBe(status);
    expect(reply.body.error?.code).toBe(code);
    expect(reply.body.error?.message.length).toBeGreaterThan(10);
    expect(reply.text).not.toMatch(/\n\s+at /);
  });

  it("rejects a body over the limit with 413, and a non-JSON body with 415", async () => {
    const large = await post("/tasks", { type: "echo", data: "x".repeat(BODY_LIMIT) });
    expect(large.status).toBe(413);
    expect(large.body.error?.code).toBe("FA_PAYLOAD_TOO_LARGE");
    expect(large.body.error?.message).toContain(`${BODY_LIMIT} bytes`);
    const form = await post("/tasks", "type=echo", "application/x-www-form-urlencoded");
    expect(form.status).toBe(415);
    expect(form.body.error?.code).toBe("FA_UNSUPPORTED_MEDIA_TYPE");
  });
});

describe("the other routes", () => {
  it("GET and DELETE of an unknown task: 404", async () => {
    for (const method of ["GET", "DELETE"]) {
      const reply = await call(method, "/tasks/no-such-task");
      expect(reply.status).toBe(404);
      expect(reply.body.error?.code).toBe("FA_UNKNOWN_TASK");
    }
  });

  it("DELETE of a finished task: 409", async () => {
    const done = await post("/tasks", { type: "echo", id: "finished-task", wait: true });
    expect(done.status).toBe(200);
    const reply = await call("DELETE", "/tasks/finished-task");
    expect(reply.status).toBe(409);
    expect(reply.body.error?.code).toBe("FA_TASK_FINISHED");
  });

  it("GET /workers, /stats and /health", async () => {
    const workers = await call("GET", "/workers");
    expect(workers.status).toBe(200);
    expect((workers.body["workers"] as unknown[]).length).toBe(1);
    const stats = await call("GET", "/stats");
    expect(stats.body).toMatchObject({ state: "running", queue: { name: "default" } });
    const health = await call("GET", "/health");
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "ok", state: "running", workers: 1 });
  });

  it("GET /metrics: Prometheus text with queue depth, tasks by status, latency and workers", async () => {
    await post("/tasks", { type: "echo", wait: true });
    const reply = await call("GET", "/metrics");
    expect(reply.status).toBe(200);
    expect(reply.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const expected of [
      "# TYPE fastagentic_queue_depth gauge",
      'fastagentic_queue_depth{queue="default"} ',
      'fastagentic_tasks{status="running"} ',
      "# TYPE fastagentic_tasks_total counter",
      'fastagentic_tasks_total{status="completed"} ',
      'fastagentic_tasks_total{status="failed"} ',
      'fastagentic_task_latency_seconds_bucket{le="0.005",type="echo",status="completed"}',
      'fastagentic_task_run_seconds_count{type="echo",status="completed"}',
      'fastagentic_workers{status="idle"} ',
      "fastagentic_worker_restarts_total 0",
      // Duplicate runs (#16.5), as the coordinator and the workers see them: none here.
      'fastagentic_duplicate_runs_total{seen_by="coordinator"} 0',
      'fastagentic_duplicate_runs_total{seen_by="workers"} 0',
      'fastagentic_duplicate_runs_total{seen_by="outcome_ignored"} 0',
      'fastagentic_finished_redeliveries_skipped_total{kind="skipped"} 0',
    ]) {
      expect(reply.text).toContain(expected);
    }
    const completed = /fastagentic_tasks_total\{status="completed"\} (\d+)/.exec(reply.text);
    expect(Number(completed?.[1])).toBeGreaterThanOrEqual(1);
    expect((await call("GET", "/idle/metrics")).status).toBe(404);
  });
});
