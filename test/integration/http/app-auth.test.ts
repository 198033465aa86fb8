/**
 * App `auth`: every route the App serves (REST, metrics, dead letters, agent endpoints, 404s) is
 * refused without credentials (401, nothing about the routes or the cluster in the answer), a
 * read-only token may read but not write (403), a full token does everything, a browser's Basic
 * credentials are refused on a cross-site write; and task errors can be hidden from clients.
 */
import { App, bearerToken, ConfigError, Coordinator, silentLogger } from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { basic, bearer, call } from "./http-helpers.js";

const FULL = "full-token-0123456789abcdef";
const READ = "read-token-0123456789abcdef";

let app: App;
let base: string;
let coordinator: Coordinator;
const seen: string[] = [];

beforeAll(async () => {
  coordinator = new Coordinator({ config: { minWorkers: 1, autoScale: false }, logger: silentLogger });
  coordinator.handler("echo", async (data) => data);
  coordinator.handler("fail", async () => {
    throw new Error("secret: the model refused");
  });
  app = new App({
    title: "Guarded",
    appLogger: silentLogger,
    exposeTaskErrors: false,
    auth: (request) => {
      seen.push(request.url);
      if (request.url === "/health") return true;
      if (request.headers["x-test-auth"] === "throw") throw new Error("auth backend down: secret-dsn");
      if (request.headers["x-test-auth"] === "deny") return { status: 403 };
      return bearerToken({ tokens: [FULL], readOnlyTokens: [READ] })(request);
    },
  });
  app.onStartup(() => coordinator.start());
  app.onShutdown(() => coordinator.stop());
  app.mountCoordinator(coordinator);
  app.agentEndpoint({ path: "/run" }, async (request) => coordinator.submit("echo", request.data));
  base = await app.listen({ port: 0 });
});

afterAll(async () => {
  await app?.close();
});

const ROUTES: Array<[string, string]> = [
  ["GET", "/workers"],
  ["GET", "/stats"],
  ["GET", "/metrics"],
  ["GET", "/tasks/abc"],
  ["POST", "/tasks"],
  ["DELETE", "/tasks/abc"],
  ["GET", "/dead-letters"],
  ["POST", "/dead-letters/1~q.default.echo/retry"],
  ["DELETE", "/dead-letters"],
  ["POST", "/run"],
  ["GET", "/no-such-route"],
];

describe("App auth", () => {
  it("refuses every route without credentials with a 401 that leaks nothing", async () => {
    for (const [method, path] of ROUTES) {
      const body = method === "GET" ? undefined : { type: "echo", data: { x: 1 } };
      const r = await call(base, method, path, body ? { body } : {});
      expect(r.status, `${method} ${path}`).toBe(401);
      expect(r.body.error.code).toBe("FA_UNAUTHORIZED");
      const challenges = r.headers.get("www-authenticate") ?? "";
      expect(challenges).toContain('Bearer realm="fastagentic"');
      expect(challenges).toContain("Basic");
      for (const leak of ["echo", "pid", "hostname", "worker", "no-such-route", "Guarded", "default"]) {
        expect(r.text, `${method} ${path} leaks "${leak}"`).not.toContain(leak);
      }
    }
  });

  it("refuses wrong and malformed credentials with 401", async () => {
    for (const authorization of [
      `Bearer ${FULL}x`,
      "Bearer",
      `Token ${FULL}`,
      "Basic !!!",
      `Basic ${Buffer.from(FULL).toString("base64")}`,
      `Bearer ${"a".repeat(10_000)}`,
    ]) {
      const r = await call(base, "GET", "/stats", { headers: { authorization } });
      expect(r.status, authorization.slice(0, 30)).toBe(401);
      expect(r.text).not.toContain("running");
    }
    const wrong = await call(base, "GET", "/stats", { headers: bearer(`${FULL}x`) });
    expect(wrong.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("lets a read-only token read and refuses its writes with 403", async () => {
    expect((await call(base, "GET", "/workers", { headers: bearer(READ) })).status).toBe(200);
    expect((await call(base, "GET", "/metrics", { headers: bearer(READ) })).status).toBe(200);
    expect((await call(base, "GET", "/dead-letters", { headers: bearer(READ) })).status).toBe(200);
    for (const [method, path] of [
      ["POST", "/tasks"],
      ["DELETE", "/dead-letters"],
      ["POST", "/run"],
    ] as const) {
      const r = await call(base, method, path, { headers: bearer(READ), body: { type: "echo" } });
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.body.error.code).toBe("FA_FORBIDDEN");
    }
  });

  it("accepts the full token as Bearer, and as the password of Basic", async () => {
    const workers = await call(base, "GET", "/workers", { headers: bearer(FULL) });
    expect(workers.status).toBe(200);
    expect(workers.body.workers[0].pid).toBe(process.pid);
    const submitted = await call(base, "POST", "/tasks", {
      headers: basic(FULL),
      body: { type: "echo", data: { x: 1 }, wait: true },
    });
    expect(submitted.status).toBe(200);
    expect(submitted.body.result).toEqual({ x: 1 });
    const run = await call(base, "POST", "/run", { headers: bearer(FULL), body: { y: 2 } });
    expect(run.body).toEqual({ y: 2 });
  });

  it("refuses a cross-site write carrying a browser's Basic credentials", async () => {
    const body = { type: "echo", data: {} };
    const cross = await call(base, "POST", "/tasks", {
      headers: { ...basic(FULL), origin: "https://evil.example" },
      body,
    });
    expect(cross.status).toBe(403);
    const fetchSite = await call(base, "POST", "/tasks", {
      headers: { ...basic(FULL), "sec-fetch-site": "cross-site" },
      body,
    });
    expect(fetchSite.status).toBe(403);
    const host = new URL(base).host;
    const same = await call(base, "POST", "/tasks", {
      headers: { ...basic(FULL), origin: `http://${host}` },
      body,
    });
    expect(same.status).toBe(202);
    // A Bearer token is not sent by a browser on its own: no cross-site check.
    const token = await call(base, "POST", "/tasks", {
      headers: { ...bearer(FULL), origin: "https://other" },
      body,
    });
    expect(token.status).toBe(202);
  });

  it("answers 403 when the auth function says so, and 500 without details when it throws", async () => {
    const denied = await call(base, "GET", "/stats", { headers: { ...bearer(FULL), "x-test-auth": "deny" } });
    expect(denied.status).toBe(403);
    const threw = await call(base, "GET", "/stats", { headers: { "x-test-auth": "throw" } });
    expect(threw.status).toBe(500);
    expect(threw.body.error.code).toBe("FA_INTERNAL");
    expect(threw.text).not.toContain("secret");
    expect((await call(base, "GET", "/health")).status).toBe(200);
  });

  it("hides task errors from clients when exposeTaskErrors is false", async () => {
    const failed = await call(base, "POST", "/tasks", {
      headers: bearer(FULL),
      body: { type: "fail", wait: true },
    });
    expect(failed.status).toBe(500);
    expect(failed.body.error.code).toBe("FA_TASK_FAILED");
    expect(failed.text).not.toContain("secret");
    const task = await call(base, "GET", `/tasks/${failed.body.error.taskId}`, { headers: bearer(FULL) });
    expect(task.body.status).toBe("failed");
    expect(task.body.error).toContain("not shown");
    expect(task.text).not.toContain("secret");
  });

  it("refuses tokens too short to be secret, and an auth that is not a function", () => {
    expect(() => bearerToken("short")).toThrow(ConfigError);
    expect(() => bearerToken([])).toThrow(ConfigError);
    expect(() => bearerToken({ tokens: FULL, readOnlyTokens: [""] })).toThrow(ConfigError);
    expect(() => new App({ auth: "token" as never })).toThrow(ConfigError);
  });
});
