/**
 * The dashboard's server side as a boundary: security headers, the redirect to the page, typed
 * answers to hostile paths and queries, the SSE feed (hello, then ticks), the page cap, a page
 * that never reads being dropped (bounded memory), and a broker that cannot answer showing as an
 * error in the feed instead of stopping it.
 */
import { connect } from "node:net";
import {
  App,
  Coordinator,
  dashboardRoutes,
  EventBus,
  InMemoryTransport,
  silentLogger,
  UnrecoverableError,
} from "fastagentic";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overriding } from "../../helpers/tap.js";
import { call } from "./http-helpers.js";

let app: App;
let base = "";
let coordinator: Coordinator;

beforeAll(async () => {
  const memory = new InMemoryTransport();
  // The broker "cannot answer" depth questions: the feed must say so and go on.
  const transport = overriding(memory, {
    depth: async () => {
      throw new Error("broker unreachable (test)");
    },
    depthByPriority: async () => {
      throw new Error("broker unreachable (test)");
    },
  });
  coordinator = new Coordinator({
    transport,
    logger: silentLogger,
    config: { minWorkers: 1, autoScale: false },
  });
  coordinator.handler("boom", async () => {
    throw new UnrecoverableError(`boom ${"x".repeat(280)}`);
  });
  // An event group: the dashboard shows it (and its lag) on its own, the transport having an event log.
  const bus = new EventBus({ transport });
  await bus.subscribe("order.*", async () => {}, { group: "billing" });
  app = new App({ appLogger: silentLogger });
  app.onStartup(() => coordinator.start());
  app.onShutdown(() => coordinator.stop());
  app.mountDashboard(coordinator, {
    path: "/ops/dash",
    intervalMs: 5,
    maxClients: 3,
    maxBufferedBytes: 16 * 1024,
  });
  base = await app.listen({ port: 0 });
  await Promise.all(Array.from({ length: 40 }, () => coordinator.submit("boom").catch(() => {})));
});

afterAll(async () => {
  await app?.close();
});

// biome-ignore lint/suspicious/noExplicitAny: ticks are checked field by field.
type Tick = Record<string, any>;

/** Reads an SSE stream until `n` events arrived; returns their names and data. */
async function events(path: string, n: number): Promise<Array<{ event: string; data: unknown }>> {
  const ctl = new AbortController();
  const r = await fetch(`${base}${path}`, { signal: ctl.signal });
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toContain("text/event-stream");
  const reader = (r.body as ReadableStream<Uint8Array>).getReader();
  let text = "";
  const out: Array<{ event: string; data: unknown }> = [];
  const guard = Date.now() + 20_000;
  while (out.length < n && Date.now() < guard) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
    let end = text.indexOf("\n\n");
    while (end >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) out.push({ event, data: JSON.parse(data) });
      end = text.indexOf("\n\n");
    }
  }
  ctl.abort();
  return out;
}

describe("dashboard server", () => {
  it("serves the page with a strict content security policy, and redirects to the slash", async () => {
    const redirect = await fetch(`${base}/ops/dash`, { redirect: "manual" });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get("location")).toBe("/ops/dash/");
    const page = await call(base, "GET", "/ops/dash/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(page.text).toContain('src="assets/app.js"');
    expect(page.text).not.toMatch(/https?:\/\//);
  });

  it("answers hostile paths and queries with typed errors", async () => {
    for (const [path, status] of [
      ["/ops/dash/assets/..%2F..%2Fpackage.json", 404],
      ["/ops/dash/assets/index.html", 404],
      ["/ops/dash/api/tasks?status=bogus", 400],
      ["/ops/dash/api/tasks?limit=0", 400],
      ["/ops/dash/api/tasks?limit=99999999999", 400],
      ["/ops/dash/api/tasks?type=a%20b", 400],
      ["/ops/dash/api/tasks?x=1", 400],
      ["/ops/dash/api/tasks/no-such-task", 404],
      ["/ops/dash/api/providers/nope/lookup?id=1", 404],
      ["/ops/dash/api/dead-letters?limit=-1", 400],
      ["/ops/dash/events?x=1", 400],
    ] as const) {
      const r = await call(base, "GET", path);
      expect(r.status, path).toBe(status);
      expect(r.body.error.code, path).toMatch(/^FA_/);
    }
    const tasks = await call(base, "GET", "/ops/dash/api/tasks?status=failed&type=boom&limit=5");
    expect(tasks.body.tasks).toHaveLength(5);
    const one = await call(base, "GET", `/ops/dash/api/tasks/${tasks.body.tasks[0].id}`);
    expect(one.body).toMatchObject({ type: "boom", status: "failed", attempts: 1 });
  });

  it("sends hello, then ticks; a broker that cannot answer shows as an error in them", async () => {
    const got = await events("/ops/dash/events", 4);
    expect(got[0]?.event).toBe("hello");
    expect(got[0]?.data).toMatchObject({
      queue: "default",
      transport: "memory",
      providers: [{ name: "event-groups", title: "Event groups", summary: true, lookup: false }],
    });
    const ticks = got.filter((e) => e.event === "tick").map((e) => e.data as Tick);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    const last = ticks[ticks.length - 1] as Tick;
    expect(last.stats.failed).toBe(40);
    expect(last.workers).toHaveLength(1);
    const sampled = ticks.find((t) => t.queues.at > 0);
    if (sampled)
      expect(sampled.queues).toMatchObject({ ok: false, error: expect.stringContaining("unreachable") });
    const later = await events("/ops/dash/events", 30);
    const withQueues = later.map((e) => e.data as Tick).filter((t) => t.queues?.at > 0);
    expect(withQueues.length).toBeGreaterThan(0);
    expect(withQueues[0]?.queues).toMatchObject({ ok: false, error: expect.stringContaining("unreachable") });
    expect(withQueues[0]?.providers["event-groups"]).toMatchObject({
      ok: true,
      value: [expect.objectContaining({ group: "billing", pattern: "order.*" })],
    });
  });

  it("drops a page that never reads its stream (its buffer stays bounded)", async () => {
    // The plugin on a Fastify of its own, to watch its feed: the silent page must leave it.
    const { plugin, feed } = dashboardRoutes(
      coordinator,
      { intervalMs: 5, maxBufferedBytes: 16 * 1024 },
      { logger: silentLogger },
    );
    const server = Fastify();
    await server.register(plugin, { prefix: "/d" });
    const soloBase = await server.listen({ port: 0, host: "127.0.0.1" });
    const { host, hostname, port } = new URL(soloBase);
    const socket = connect({ host: hostname, port: Number(port) });
    socket.on("error", () => {});
    socket.once("data", () => socket.pause()); // reads the head, then never again
    socket.write(`GET /d/events HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    try {
      await expect.poll(() => feed.clientCount, { timeout: 10_000 }).toBe(1);
      // Bounded by the kernel's socket buffers (several MB on loopback) filling first.
      await expect.poll(() => feed.clientCount, { timeout: 150_000, interval: 100 }).toBe(0);
    } finally {
      socket.destroy();
      await server.close();
    }
  }, 180_000);

  it("refuses pages beyond maxClients with a typed 503", async () => {
    const controllers = [new AbortController(), new AbortController(), new AbortController()];
    try {
      for (const c of controllers)
        expect((await fetch(`${base}/ops/dash/events`, { signal: c.signal })).status).toBe(200);
      const fourth = await call(base, "GET", "/ops/dash/events");
      expect(fourth.status).toBe(503);
      expect(fourth.body.error.code).toBe("FA_TOO_MANY_CLIENTS");
    } finally {
      for (const c of controllers) c.abort();
    }
  });
});
