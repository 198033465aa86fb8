/**
 * The one event-log conformance suite: the same cases, through the EventBus, against every
 * implementation of transports/event-log.ts (memory, NATS JetStream, RabbitMQ). Each broker's
 * *.event-log.test.ts calls `describeEventLogConformance`. Waits are on events, bounded by the
 * hang guard; nothing sleeps.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { BusEvent } from "../../src/events/event-codec.js";
import {
  ConfigError,
  EventBus,
  type EventSubscription,
  InvalidNameError,
  NotSerializableError,
  PayloadTooLargeError,
  silentLogger,
} from "../../src/index.js";
import type { Transport } from "../../transports/transport.js";
import { Collector, deferred } from "../helpers/async.js";

export interface EventLogTarget {
  name: string;
  available(): Promise<boolean>;
  /** A new transport in a namespace of its own. */
  create(): Promise<Transport> | Transport;
  /** Removes what it declared on the broker. */
  cleanup?(transport: Transport): Promise<void>;
}

const FAST = { initialMs: 10, multiplier: 2, maxMs: 50, jitter: 0 };

export function describeEventLogConformance(target: EventLogTarget): void {
  describe(`event log conformance: ${target.name}`, () => {
    let ok = false;
    const open: Array<{ transport: Transport; bus: EventBus }> = [];

    beforeAll(async () => {
      ok = await target.available();
    });

    afterEach(async () => {
      for (const { transport, bus } of open.splice(0)) {
        await bus.close();
        await target.cleanup?.(transport);
        await transport.close();
      }
    });

    async function bus(): Promise<EventBus> {
      const transport = await target.create();
      await transport.connect();
      const b = new EventBus({ transport, logger: silentLogger });
      open.push({ transport, bus: b });
      return b;
    }

    /** A second bus on the same broker and namespace (another process, as far as the log can tell). */
    function twin(of: EventBus): EventBus {
      return new EventBus({ transport: of.transport, logger: silentLogger });
    }

    it("delivers every event to every group, once per group, after publish resolved", async ({ skip }) => {
      if (!ok) skip();
      const b = await bus();
      const billing = new Collector<BusEvent>();
      const shipping = new Collector<BusEvent>();
      await b.subscribe("order.created", (e) => billing.push(e), { group: "billing" });
      await b.subscribe("order.created", (e) => shipping.push(e), { group: "shipping" });
      for (let i = 0; i < 5; i++) await b.publish("order.created", { i }, { key: `o-${i}` });
      const got = await billing.waitFor(5);
      await shipping.waitFor(5);
      expect(got.map((e) => (e.data as { i: number }).i).sort()).toEqual([0, 1, 2, 3, 4]);
      expect(got[0]).toMatchObject({ type: "order.created", key: "o-0" });
      expect(typeof got[0]?.id).toBe("string");
      expect(typeof got[0]?.time).toBe("number");
      // nothing more arrives (no duplicates in a quiet run): a later event comes alone
      await b.publish("order.created", { i: 5 });
      expect((await billing.waitFor(6)).length).toBe(6);
      expect(billing.items.length).toBe(6);
    });

    it("makes the members of one group compete", async ({ skip }) => {
      if (!ok) skip();
      const b = await bus();
      const other = twin(b);
      const gate = deferred();
      const a = new Collector<number>();
      const c = new Collector<number>();
      await b.subscribe(
        "job.run",
        async (e) => {
          a.push((e.data as { i: number }).i);
          await gate.promise;
        },
        { group: "workers", concurrency: 1 },
      );
      await other.subscribe("job.run", (e) => c.push((e.data as { i: number }).i), {
        group: "workers",
        concurrency: 1,
      });
      for (let i = 0; i < 4; i++) await b.publish("job.run", { i });
      // one member holds its first event; the other takes the rest
      await a.waitFor(1);
      await c.waitFor(3);
      gate.resolve();
      expect([...a.items, ...c.items].sort()).toEqual([0, 1, 2, 3]);
      await other.close();
    });

    it("matches * (one part) and > (one or more parts) the same way", async ({ skip }) => {
      if (!ok) skip();
      const b = await bus();
      const patterns = ["order.*", "order.>", "*.created", ">", "order.created"];
      const got = new Map(patterns.map((p) => [p, new Collector<string>()]));
      let g = 0;
      for (const p of patterns) {
        await b.subscribe(p, (e) => got.get(p)?.push(e.type), { group: `g${g++}` });
      }
      for (const type of ["order.created", "order.item.added", "user.created", "order", "done"]) {
        await b.publish(type, {});
      }
      await b.publish("end.created", {});
      const expected: Record<string, string[]> = {
        "order.*": ["order.created"],
        "order.>": ["order.created", "order.item.added"],
        "*.created": ["order.created", "user.created", "end.created"],
        ">": ["order.created", "order.item.added", "user.created", "order", "done", "end.created"],
        "order.created": ["order.created"],
      };
      for (const p of patterns) {
        const items = await got.get(p)!.waitFor(expected[p]!.length, p);
        expect(new Set(items)).toEqual(new Set(expected[p]));
      }
      // ">" saw the last event, so every other group had its chance at it too
      await got.get(">")!.waitFor(6);
      for (const p of patterns) expect(got.get(p)!.items.length, p).toBe(expected[p]!.length);
    });

    it("stores a re-sent id once", async ({ skip }) => {
      if (!ok) skip();
      const b = await bus();
      const got = new Collector<string>();
      await b.subscribe("pay.done", (e) => got.push(e.id), { group: "ledger" });
      await b.publish("pay.done", { n: 1 }, { id: "evt-1" });
      await b.publish("pay.done", { n: 1 }, { id: "evt-1" });
      await b.publish("pay.done", { n: 2 }, { id: "evt-2" });
      await got.waitFor(2);
      await b.publish("pay.done", { n: 3 }, { id: "evt-3" });
      expect(await got.waitFor(3)).toEqual(["evt-1", "evt-2", "evt-3"]);
      expect(got.items.length).toBe(3);
    });

    it("retries a failing handler, then dead-letters it with its last error, without blocking others", async ({
      skip,
    }) => {
      if (!ok) skip();
      const b = await bus();
      const attempts = new Collector<number>();
      const good = new Collector<number>();
      await b.subscribe(
        "mail.send",
        async (e, ctx) => {
          const { i } = e.data as { i: number };
          if (i === 0) {
            attempts.push(ctx.attempt);
            throw new Error(`smtp refused attempt ${ctx.attempt}`);
          }
          good.push(i);
        },
        { group: "mailer", retries: 2, retryBackoff: FAST, concurrency: 4 },
      );
      await b.publish("mail.send", { i: 0 });
      for (let i = 1; i <= 3; i++) await b.publish("mail.send", { i });
      await good.waitFor(3);
      expect(await attempts.waitFor(3)).toEqual([1, 2, 3]);
      const dead = await waitUntil(async () => {
        const d = await b.deadLetters("mailer", "mail.send");
        return d.length > 0 ? d : undefined;
      }, "a dead letter");
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ group: "mailer", type: "mail.send", reason: "smtp refused attempt 3" });
      expect(JSON.parse(new TextDecoder().decode(dead[0]!.body)).data).toEqual({ i: 0 });
      expect(attempts.items.length).toBe(3);
    });

    it("gives a group that was down what was published meanwhile, and lists it with its lag", async ({
      skip,
    }) => {
      if (!ok) skip();
      const b = await bus();
      const first = new Collector<number>();
      const sub = await b.subscribe("stock.moved", (e) => first.push((e.data as { i: number }).i), {
        group: "warehouse",
      });
      await b.publish("stock.moved", { i: 0 });
      await first.waitFor(1);
      await sub.close();
      for (let i = 1; i <= 3; i++) await b.publish("stock.moved", { i });
      const lagging = await waitUntil(async () => {
        const g = (await b.groups()).find((x) => x.group === "warehouse");
        return g?.pending === 3 ? g : undefined;
      }, "a lag of 3");
      expect(lagging).toMatchObject({ pattern: "stock.moved", durable: true, ordered: false });
      const again = new Collector<number>();
      await b.subscribe("stock.moved", (e) => again.push((e.data as { i: number }).i), {
        group: "warehouse",
      });
      expect((await again.waitFor(3)).sort()).toEqual([1, 2, 3]);
      expect(await b.deleteGroup("warehouse", "stock.moved")).toBe(true);
      expect((await b.groups()).some((x) => x.group === "warehouse")).toBe(false);
    });

    it("replays from all, from a sequence and from a time", async ({ skip }) => {
      if (!ok) skip();
      const b = await bus();
      await b.publish("audit.entry", { i: 1 });
      await b.publish("audit.entry", { i: 2 });
      const t2 = Date.now();
      await waitUntil(async () => (Date.now() > t2 ? true : undefined), "the clock to move");
      const published3 = await b.publish("audit.entry", { i: 3 });
      await b.publish("audit.entry", { i: 4 });
      const all = new Collector<BusEvent>();
      await b.subscribe("audit.entry", (e) => all.push(e), { group: "replay-all", from: "all" });
      const events = await all.waitFor(4);
      expect(events.map((e) => (e.data as { i: number }).i).sort()).toEqual([1, 2, 3, 4]);
      const third = events.find((e) => e.id === published3.id);
      expect(third?.sequence).toBeTypeOf("number");
      const bySeq = new Collector<number>();
      await b.subscribe("audit.entry", (e) => bySeq.push((e.data as { i: number }).i), {
        group: "replay-seq",
        from: { sequence: third!.sequence! },
      });
      expect((await bySeq.waitFor(2)).sort()).toEqual([3, 4]);
      const byTime = new Collector<number>();
      await b.subscribe("audit.entry", (e) => byTime.push((e.data as { i: number }).i), {
        group: "replay-time",
        from: { time: published3.time },
      });
      expect((await byTime.waitFor(2)).sort()).toEqual([3, 4]);
      await b.publish("audit.entry", { i: 5 });
      await all.waitFor(5);
      await bySeq.waitFor(3);
      await byTime.waitFor(3);
      expect(bySeq.items.length).toBe(3);
      expect(byTime.items.length).toBe(3);
      const fresh = new Collector<number>();
      await b.subscribe("audit.entry", (e) => fresh.push((e.data as { i: number }).i), { group: "only-new" });
      await b.publish("audit.entry", { i: 6 });
      expect(await fresh.waitFor(1)).toEqual([6]);
    });

    it("handles one key's events one at a time, in publish order, across the group's members", async ({
      skip,
    }) => {
      if (!ok) skip();
      const b = await bus();
      const other = twin(b);
      const running = new Map<string, number>();
      let overlap = 0;
      const seen = new Collector<{ key: string; n: number }>();
      const handler = async (e: BusEvent) => {
        const key = e.key as string;
        running.set(key, (running.get(key) ?? 0) + 1);
        if ((running.get(key) ?? 0) > 1) overlap++;
        await new Promise((r) => setImmediate(r));
        running.set(key, (running.get(key) ?? 1) - 1);
        seen.push({ key, n: (e.data as { n: number }).n });
      };
      const options = { group: "ledger", ordered: true, concurrency: 8 };
      await b.subscribe("acct.>", handler, options);
      await other.subscribe("acct.>", handler, options);
      const keys = ["a", "b", "c"];
      const sends: Promise<unknown>[] = [];
      for (let n = 0; n < 20; n++) {
        for (const key of keys) sends.push(b.publish(n % 2 ? "acct.debit" : "acct.credit", { n }, { key }));
        await Promise.all(sends.splice(0));
      }
      await seen.waitFor(60);
      expect(overlap).toBe(0);
      for (const key of keys) {
        expect(seen.items.filter((s) => s.key === key).map((s) => s.n)).toEqual([...Array(20).keys()]);
      }
      await other.close();
    });

    it("gives a closing member's unsettled events to the others", async ({ skip }) => {
      if (!ok) skip();
      const b = await bus();
      const other = twin(b);
      const held = new Collector<number>();
      const stuck = deferred();
      const sub = await b.subscribe(
        "img.resize",
        async (e, ctx) => {
          held.push((e.data as { i: number }).i);
          await Promise.race([stuck.promise, new Promise((r) => ctx.signal.addEventListener("abort", r))]);
          throw new Error("aborted");
        },
        { group: "resizer", concurrency: 1, retries: 0 },
      );
      await b.publish("img.resize", { i: 7 });
      await held.waitFor(1);
      const later = new Collector<{ i: number; count: number }>();
      const closing = sub.close({ timeoutMs: 0 });
      await other.subscribe(
        "img.resize",
        (e, ctx) => later.push({ i: (e.data as { i: number }).i, count: ctx.deliveryCount }),
        { group: "resizer" },
      );
      await closing;
      const [got] = await later.waitFor(1);
      expect(got?.i).toBe(7);
      expect(got?.count).toBeGreaterThanOrEqual(2);
      stuck.resolve();
      await other.close();
    });

    it("sends live events to non-durable subscriptions; durable groups never see durable:false ones", async ({
      skip,
    }) => {
      if (!ok) skip();
      const b = await bus();
      const live = new Collector<string>();
      const kept = new Collector<string>();
      await b.subscribe("ping.*", (e) => live.push(e.type), { durable: false });
      await b.subscribe("ping.*", (e) => kept.push(e.type), { group: "kept" });
      await b.publish("ping.fast", {}, { durable: false });
      await b.publish("ping.stored", {});
      expect(new Set(await live.waitFor(2))).toEqual(new Set(["ping.fast", "ping.stored"]));
      expect(await kept.waitFor(1)).toEqual(["ping.stored"]);
      await b.publish("ping.last", {});
      await kept.waitFor(2);
      expect(kept.items).toEqual(["ping.stored", "ping.last"]);
    });

    it("refuses bad names, options and data with typed errors", async ({ skip }) => {
      if (!ok) skip();
      const b = await bus();
      await expect(b.publish("order.*", {})).rejects.toBeInstanceOf(InvalidNameError);
      await expect(b.publish("bad type", {})).rejects.toBeInstanceOf(InvalidNameError);
      await expect(b.publish("ok", { f: () => 1 })).rejects.toBeInstanceOf(NotSerializableError);
      await expect(b.publish("ok", { big: "x".repeat(b.transport.maxPayloadBytes) })).rejects.toBeInstanceOf(
        PayloadTooLargeError,
      );
      await expect(b.subscribe("a.>.b", () => {}, { group: "g" })).rejects.toBeInstanceOf(InvalidNameError);
      await expect(b.subscribe("a", () => {}, { group: "a.b" })).rejects.toBeInstanceOf(InvalidNameError);
      await expect(b.subscribe("a", () => {})).rejects.toBeInstanceOf(ConfigError);
      await expect(b.subscribe("a", () => {}, { group: "g", from: { sequence: 0 } })).rejects.toBeInstanceOf(
        ConfigError,
      );
      await expect(b.subscribe("a", () => {}, { group: "g", concurrency: 0 })).rejects.toBeInstanceOf(
        ConfigError,
      );
    });

    it("dead-letters a malformed body instead of handing it to the handler", async ({ skip }) => {
      if (!ok) skip();
      const b = await bus();
      const got = new Collector<string>();
      await b.subscribe("raw.bytes", (e) => got.push(e.id), { group: "strict" });
      const log = b.transport.eventLog!();
      await log.append({ type: "raw.bytes", id: "junk-1", body: new TextEncoder().encode("{not json") });
      await b.publish("raw.bytes", {}, { id: "fine-1" });
      expect(await got.waitFor(1)).toEqual(["fine-1"]);
      const dead = await waitUntil(async () => {
        const d = await b.deadLetters("strict", "raw.bytes");
        return d.length > 0 ? d : undefined;
      }, "the malformed event dead-lettered");
      expect(dead[0]?.reason).toMatch(/not valid JSON/);
    });
  });
}

export type { EventSubscription };

/** Polls `check` (a broker read) until it returns a value; bounded by the hang guard. */
export async function waitUntil<T>(
  check: () => Promise<T | undefined>,
  what: string,
  guardMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + guardMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`hang guard: waited for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
