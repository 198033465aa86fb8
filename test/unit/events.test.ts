/**
 * The EventBus above the log, in memory: @On methods (compiled under both decorator modes),
 * coordinator.events, task lifecycle events, trace context from publisher to handler, ordered
 * runs per key on one member, timeouts and validation of subscribe options.
 */
import { context, ROOT_CONTEXT, type SpanContext, TraceFlags, trace } from "@opentelemetry/api";
import {
  type BusEvent,
  ConfigError,
  Coordinator,
  EventBus,
  InMemoryTransport,
  silentLogger,
  type TaskLifecycleEvent,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { Collector } from "../helpers/async.js";
import { compileFixtures, type DecoratorMode } from "../helpers/compile-fixtures.js";
import { useW3CTracing } from "../helpers/otel.js";

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

function coordinator(workerConfig: Record<string, unknown> = {}, transport = new InMemoryTransport()) {
  const c = new Coordinator({
    transport,
    logger: silentLogger,
    config: { minWorkers: 1, autoScale: false },
    workerConfig,
  });
  stops.push(async () => {
    await c.stop();
    await transport.close();
  });
  return c;
}

describe.each(["standard", "legacy"] as DecoratorMode[])("@On compiled with %s decorators", (mode) => {
  it("subscribes an actor's @On methods when its coordinator starts (group: the actor's name by default)", async () => {
    const fixtures = compileFixtures(mode);
    expect(fixtures.diagnostics).toEqual([]);
    const { Billing } = await fixtures.load("events.actor");
    const c = coordinator();
    const billing = new (Billing as new () => { seen: string[] })();
    c.register(billing);
    await c.start();
    const groups = await c.events.groups();
    expect(groups.map((g) => `${g.group} ${g.pattern}`).sort()).toEqual([
      "audit order.*",
      "billing order.created",
    ]);
    await c.events.publish("order.created", { total: 42 });
    await c.events.publish("order.paid", { total: 42 });
    await waitFor(() => billing.seen.length >= 3);
    expect(billing.seen.sort()).toEqual(["audit:order.created", "audit:order.paid", "charge:42:billing"]);
  }, 60_000);
});

describe("EventBus", () => {
  it("is on the coordinator's transport: another bus there sees its events", async () => {
    const transport = new InMemoryTransport();
    const c = coordinator({}, transport);
    await c.start();
    const other = new EventBus({ transport, logger: silentLogger });
    stops.push(() => other.close());
    const got = new Collector<BusEvent>();
    await other.subscribe("user.*", (e) => got.push(e), { group: "mailer" });
    const { id } = await c.events.publish("user.signed-up", { email: "a@b.c" }, { key: "u-1" });
    const [event] = await got.waitFor(1);
    expect(event).toMatchObject({ id, type: "user.signed-up", key: "u-1", data: { email: "a@b.c" } });
  });

  it("runs one key's events one at a time on a member that holds several (arrival order)", async () => {
    const bus = new EventBus({ logger: silentLogger });
    stops.push(() => bus.close());
    const log = bus.transport.eventLog!();
    // A log that hands a member several events of one key at once (as RabbitMQ's single active consumer does).
    const order: string[] = [];
    let running = 0;
    let overlap = 0;
    const done = new Collector<string>();
    await bus.subscribe(
      "k.>",
      async (e) => {
        running++;
        if (running > 1 && e.key === "same") overlap++;
        await new Promise((r) => setImmediate(r));
        order.push(`${e.key}:${(e.data as { n: number }).n}`);
        running--;
        done.push(e.id);
      },
      { group: "serial", ordered: true, concurrency: 8 },
    );
    void log;
    for (let n = 0; n < 5; n++) await bus.publish("k.x", { n }, { key: "same" });
    await done.waitFor(5);
    expect(order).toEqual(["same:0", "same:1", "same:2", "same:3", "same:4"]);
    expect(overlap).toBe(0);
  });

  it("aborts a handler past its timeoutMs and counts it as a failed attempt", async () => {
    const bus = new EventBus({ logger: silentLogger });
    stops.push(() => bus.close());
    const aborted = new Collector<string>();
    const sub = await bus.subscribe(
      "slow.job",
      (_e, ctx) =>
        new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => {
            aborted.push(String((ctx.signal.reason as Error).message));
            reject(ctx.signal.reason);
          }),
        ),
      { group: "slow", timeoutMs: 20, retries: 0 },
    );
    await bus.publish("slow.job", {});
    const [reason] = await aborted.waitFor(1);
    expect(reason).toMatch(/timeoutMs of 20 ms/);
    await waitFor(() => sub.stats.deadLettered === 1);
    const dead = await bus.deadLetters("slow", "slow.job");
    expect(dead[0]?.reason).toMatch(/timeoutMs/);
  });

  it("refuses unknown subscribe options and non-functions", async () => {
    const bus = new EventBus({ logger: silentLogger });
    stops.push(() => bus.close());
    await expect(bus.subscribe("a", () => {}, { group: "g", concurency: 2 } as never)).rejects.toBeInstanceOf(
      ConfigError,
    );
    await expect(bus.subscribe("a", "nope" as never, { group: "g" })).rejects.toBeInstanceOf(ConfigError);
    await expect(bus.subscribe("a", () => {}, { durable: false, from: "all" })).rejects.toBeInstanceOf(
      ConfigError,
    );
    expect(() => new EventBus({ transprt: 1 } as never)).toThrow(ConfigError);
  });
});

describe("task lifecycle events", () => {
  it.each(["durable", "fast"] as const)("publishes task.completed and task.failed (%s)", async (mode) => {
    const c = coordinator({ lifecycleEvents: mode });
    c.handler("double", async (data: { x: number }) => data.x * 2);
    c.handler("boom", async () => {
      throw new Error("kaput");
    });
    const seen = new Collector<BusEvent<TaskLifecycleEvent>>();
    await c.start();
    await c.events.subscribe("task.*", (e) => seen.push(e as BusEvent<TaskLifecycleEvent>), {
      group: "observer",
      durable: mode === "durable",
    });
    expect(await c.submit("double", { x: 21 })).toBe(42);
    await expect(c.submit("boom", {})).rejects.toThrow("kaput");
    const events = await seen.waitFor(2);
    const completed = events.find((e) => e.type === "task.completed");
    const failed = events.find((e) => e.type === "task.failed");
    expect(completed?.data).toMatchObject({ taskType: "double", status: "completed", result: 42 });
    expect(typeof completed?.data.workerId).toBe("string");
    expect(typeof completed?.data.durationMs).toBe("number");
    expect(failed?.data).toMatchObject({ taskType: "boom", status: "failed", error: "kaput" });
  });

  it("publishes nothing by default", async () => {
    const c = coordinator();
    c.handler("double", async (data: { x: number }) => data.x * 2);
    await c.start();
    const seen = new Collector<string>();
    await c.events.subscribe(">", (e) => seen.push(e.type), { group: "all" });
    await c.submit("double", { x: 1 });
    await c.events.publish("marker", {});
    expect(await seen.waitFor(1)).toEqual(["marker"]);
    expect(seen.items).toEqual(["marker"]);
  });
});

describe("trace context", () => {
  const parent: SpanContext = {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: TraceFlags.SAMPLED,
    isRemote: false,
  };
  useW3CTracing();

  it("carries the publisher's span context into the handler's active context", async () => {
    const bus = new EventBus({ logger: silentLogger });
    stops.push(() => bus.close());
    const got = new Collector<{ header?: string; active?: SpanContext }>();
    await bus.subscribe(
      "traced",
      (e) => got.push({ header: e.headers["traceparent"], active: trace.getSpanContext(context.active()) }),
      { group: "tracer" },
    );
    await context.with(trace.setSpanContext(ROOT_CONTEXT, parent), () => bus.publish("traced", {}));
    const [seen] = await got.waitFor(1);
    expect(seen?.header).toBe(`00-${parent.traceId}-${parent.spanId}-01`);
    expect(seen?.active).toMatchObject({ traceId: parent.traceId, spanId: parent.spanId, isRemote: true });
  });
});

async function waitFor(check: () => boolean, guardMs = 20_000): Promise<void> {
  const deadline = Date.now() + guardMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("hang guard: condition not met");
    await new Promise((r) => setTimeout(r, 5));
  }
}
