/**
 * The HTTP surface under hostile input, over a real socket: every id accepted at submit is
 * reachable at its Location, and every error, Fastify's own included (bad URL encoding, overlong
 * path parameters, requests that are not HTTP), has the body `{ error: { code, message } }`.
 */
import { App, Coordinator, silentLogger } from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectErrorBody, raw } from "./http-helpers.js";

let app: App;
let base: string;
let coordinator: Coordinator;

beforeAll(async () => {
  coordinator = new Coordinator({ config: { minWorkers: 1, autoScale: false }, logger: silentLogger });
  coordinator.handler("echo", async (data) => data);
  coordinator.handler("boom", async () => {
    throw new Error("boom");
  });
  app = new App({ title: "Hostile", bodyLimit: 4096, appLogger: silentLogger });
  app.onStartup(() => coordinator.start());
  app.onShutdown(() => coordinator.stop());
  app.mountCoordinator(coordinator);
  base = await app.listen({ port: 0 });
});

afterAll(async () => {
  await app.close();
});

describe("task ids", () => {
  const ids = [
    "a",
    "x".repeat(100),
    "y".repeat(101),
    "z".repeat(128),
    ":".repeat(128),
    `order-42.v1:${"b".repeat(116)}`,
  ];
  for (const id of ids) {
    it(`an id of ${id.length} characters (${id.slice(0, 12)}…) is reachable at its Location`, async () => {
      const submitted = await fetch(`${base}/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "echo", id, data: { id } }),
      });
      expect(submitted.status).toBe(202);
      const location = submitted.headers.get("location") as string;
      const got = await fetch(`${base}${location}`);
      expect(got.status, await got.clone().text()).toBe(200);
      expect(((await got.json()) as { id: string }).id).toBe(id);
    });
  }
});

describe("a reused task id over HTTP", () => {
  const post = (body: unknown) =>
    fetch(`${base}/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it("the same type and data is the same task; another type or data is 409", async () => {
    const first = await post({ type: "echo", id: "http-42", data: { by: "a" }, wait: true });
    expect(first.status).toBe(200);
    expect(((await first.json()) as { result: unknown }).result).toEqual({ by: "a" });
    const again = await post({ type: "echo", id: "http-42", data: { by: "a" }, wait: true });
    expect(again.status).toBe(200);
    for (const body of [
      { type: "boom", id: "http-42", data: { by: "b" }, wait: true },
      { type: "echo", id: "http-42", data: { by: "b" } },
    ]) {
      const conflict = await post(body);
      expect(conflict.status).toBe(409);
      expect(expectErrorBody(await conflict.text(), "conflict").code).toBe("FA_TASK_ID_CONFLICT");
    }
  });
});

describe("every error has the body { error: { code, message } }", () => {
  const requests: Array<[string, string, RequestInit | undefined, number, string]> = [
    ["a malformed percent-encoding", "/tasks/%FF%FE", undefined, 400, "FA_BAD_URL"],
    ["a path parameter of 4 KB", `/tasks/${"a".repeat(4096)}`, undefined, 414, "FA_URL_TOO_LONG"],
    ["an unknown task", "/tasks/nope", undefined, 404, "FA_UNKNOWN_TASK"],
    ["an unknown route", "/nope", undefined, 404, "FA_NOT_FOUND"],
    ["an unknown method on a route", "/tasks", { method: "PUT" }, 404, "FA_NOT_FOUND"],
    [
      "bad JSON",
      "/tasks",
      { method: "POST", headers: { "content-type": "application/json" }, body: "{x" },
      400,
      "FA_INVALID_JSON",
    ],
    [
      "a body that is not JSON",
      "/tasks",
      { method: "POST", headers: { "content-type": "application/xml" }, body: "<x/>" },
      415,
      "FA_UNSUPPORTED_MEDIA_TYPE",
    ],
    [
      "a body over the limit",
      "/tasks",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "echo", data: "x".repeat(5000) }),
      },
      413,
      "FA_PAYLOAD_TOO_LARGE",
    ],
    [
      "an invalid task id",
      "/tasks",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "echo", id: "a/b" }),
      },
      400,
      "FA_VALIDATION",
    ],
  ];
  for (const [what, path, init, status, code] of requests) {
    it(what, async () => {
      const response = await fetch(`${base}${path}`, init);
      expect(response.status).toBe(status);
      expect(expectErrorBody(await response.text(), what).code).toBe(code);
    });
  }

  it("a request that is not HTTP: 400 in the same shape, then the connection closes", async () => {
    const answer = await raw(base, "NOT HTTP AT ALL\r\n\r\n");
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
    expect(expectErrorBody(body, "not HTTP").code).toBe("FA_BAD_REQUEST");
  });

  it("headers over Node's limit: 431 in the same shape", async () => {
    const answer = await raw(base, `GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
    const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
    expect(expectErrorBody(body, "431").code).toBe("FA_HEADERS_TOO_LARGE");
  });
});
