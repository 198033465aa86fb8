/**
 * The page never receives one message per task: while thousands of tasks finish as fast as the
 * in-memory coordinator runs them, a page reading the feed gets one tick per interval (counted
 * message by message), each of bounded size, and the per-second points in those ticks still
 * account for every task. Also the entities API of the dashboard: types by name, hostile look-ups.
 */
import {
  App,
  Coordinator,
  defineEntity,
  InMemoryTransport,
  silentLogger,
  stateStoreFromUrl,
} from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logMachine } from "../../conformance/entity-machines.js";
import { call } from "./http-helpers.js";

const INTERVAL_MS = 200;
const TASKS = 20_000;
const Ledger = defineEntity("ledger", logMachine, { partitions: 2 });
const Remote = defineEntity("remote-only", logMachine, { partitions: 2 });

let app: App;
let base = "";
let coordinator: Coordinator;

beforeAll(async () => {
  coordinator = new Coordinator({
    transport: new InMemoryTransport(),
    logger: silentLogger,
    config: { minWorkers: 2, maxWorkers: 2, autoScale: false, maxQueueSize: 100_000 },
    workerConfig: { maxConcurrentTasks: 256 },
    entities: { stateStore: stateStoreFromUrl("memory://") },
  });
  coordinator.handler("double", (data: { x: number }) => data.x * 2);
  coordinator.register(Ledger);
  app = new App({ appLogger: silentLogger });
  app.onStartup(() => coordinator.start());
  app.onShutdown(() => coordinator.stop({ graceful: false }));
  app.mountDashboard(coordinator, { path: "/dash", intervalMs: INTERVAL_MS, entities: [Remote] });
  base = await app.listen({ port: 0 });
});

afterAll(async () => {
  await app?.close();
});

interface Frame {
  event: string;
  bytes: number;
  // biome-ignore lint/suspicious/noExplicitAny: ticks are checked field by field.
  data: any;
}

/** Reads the feed into `frames` (every SSE message, whatever its kind) until aborted. */
function readFeed(frames: Frame[], signal: AbortSignal): Promise<void> {
  return (async () => {
    const r = await fetch(`${base}/dash/events`, { signal });
    expect(r.status).toBe(200);
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += decoder.decode(value, { stream: true });
        let end = text.indexOf("\n\n");
        while (end >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          end = text.indexOf("\n\n");
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (block.startsWith("retry:")) continue;
          frames.push({
            event: event ?? "message",
            bytes: block.length,
            data: data ? JSON.parse(data) : null,
          });
        }
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  })();
}

describe("dashboard feed under load", () => {
  it("sends one tick per interval, never a message per task, and its points count every task", {
    timeout: 120_000,
  }, async () => {
    const frames: Frame[] = [];
    const ctl = new AbortController();
    const reading = readFeed(frames, ctl.signal);
    await expect.poll(() => frames.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2); // hello, first tick
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 500 }, async () => {
        while (next < TASKS) {
          next++;
          await coordinator.submit("double", { x: next });
        }
      }),
    );
    const elapsedMs = performance.now() - started;
    // Every task lands in the points of a whole second once that second is over.
    const completedInPoints = () =>
      frames.flatMap((f) => f.data?.points ?? []).reduce((n: number, p: number[]) => n + (p[1] ?? 0), 0);
    await expect.poll(completedInPoints, { timeout: 15_000, interval: 100 }).toBe(TASKS);
    const totalMs = performance.now() - started;
    ctl.abort();
    await reading;

    const rate = Math.round(TASKS / (elapsedMs / 1000));
    console.log(
      `${TASKS} tasks at ${rate} tasks/s: ${frames.length} SSE messages in ${Math.round(totalMs)} ms`,
    );
    expect(frames[0]?.event).toBe("hello");
    expect(new Set(frames.slice(1).map((f) => f.event))).toEqual(new Set(["tick"]));
    // One tick per interval (plus the page's first, and timer slack): a count bound by time, not by tasks.
    expect(frames.length).toBeLessThanOrEqual(Math.ceil(totalMs / INTERVAL_MS) + 4);
    expect(frames.length).toBeLessThan(TASKS / 100);
    for (const f of frames.slice(1)) {
      expect(f.data.tasks.length).toBeLessThanOrEqual(40);
      expect(f.bytes).toBeLessThan(64 * 1024);
    }
    const last = frames[frames.length - 1]?.data;
    expect(last.stats.completed).toBeGreaterThanOrEqual(TASKS);
  });
});

describe("dashboard entities API", () => {
  it("lists entity types by name, reads a snapshot, and refuses hostile look-ups with typed errors", async () => {
    const types = await call(base, "GET", "/dash/api/entities");
    expect(types.body).toEqual({ types: ["ledger", "remote-only"] });
    await coordinator.entity(Ledger, "l-1").ask({ type: "APPEND", n: 7 });
    await coordinator.entity(Ledger, "l-1").ask({ type: "APPEND", n: 8 });
    const one = await call(base, "GET", "/dash/api/entities/ledger?id=l-1");
    expect(one.status).toBe(200);
    expect(one.body).toEqual({
      type: "ledger",
      id: "l-1",
      value: "open",
      context: { log: [7, 8] },
      status: "active",
      version: 2,
    });
    for (const [path, status] of [
      ["/dash/api/entities/ledger?id=nobody", 404],
      ["/dash/api/entities/remote-only?id=l-1", 404],
      ["/dash/api/entities/ledger", 400],
      ["/dash/api/entities/ledger?id=", 400],
      [`/dash/api/entities/ledger?id=${"x".repeat(2000)}`, 400],
      ["/dash/api/entities/bad%20type?id=1", 400],
      ["/dash/api/entities/ledger?id=1&x=2", 400],
      ["/dash/api/entities?x=1", 400],
    ] as const) {
      const r = await call(base, "GET", path);
      expect(r.status, path).toBe(status);
      expect(r.body.error.code, path).toMatch(/^FA_/);
    }
  });
});
