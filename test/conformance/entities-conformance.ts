/**
 * The entity guarantees, one suite run on every transport (memory, NATS, AMQP) with its default
 * state store: the README's "Entities" section, case by case. Workers are real Workers; on a
 * broker each has a transport (a connection) of its own, as separate processes would.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Coordinator } from "../../src/coordinator.js";
import { Handler } from "../../src/decorators/handler.decorator.js";
import { defineEntity } from "../../src/entities/define-entity.js";
import { Entity } from "../../src/entities/entity.decorator.js";
import type { EntitiesOptions } from "../../src/entities/entity-hosting.js";
import { EntityEventError, EntityRejectedError, EntitySnapshotError } from "../../src/errors.js";
import { EventBus } from "../../src/events/event-bus.js";
import { Worker } from "../../src/worker.js";
import type { Transport } from "../../transports/transport.js";
import { HANG_GUARD_MS } from "../helpers/async.js";
import { logEntity, orderMachine, relayMachine } from "./entity-machines.js";

export interface EntitiesTarget {
  name: string;
  available(): Promise<boolean>;
  /** A namespace of its own for one test. */
  namespace(): string;
  /** A transport (a connection) in the namespace; each call a new one, as another process would have. */
  transport(namespace: string): Transport;
  /** The `entities` option for workers and coordinators (e.g. a state store). */
  entities?(namespace: string): EntitiesOptions;
  /** Removes what the namespace left on the broker and in the store. */
  cleanup?(namespace: string, transports: Transport[]): Promise<void>;
}

/** Polls `check` until it returns true (a hang guard, not a timing assertion). */
async function eventually(
  check: () => Promise<boolean> | boolean,
  what: string | (() => string),
  guardMs = HANG_GUARD_MS,
): Promise<void> {
  const deadline = Date.now() + guardMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`hang guard: ${typeof what === "string" ? what : what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function describeEntitiesConformance(target: EntitiesTarget): void {
  describe(`entities conformance: ${target.name}`, () => {
    let ok = false;
    let ns = "";
    let transports: Transport[] = [];
    let stoppers: Array<() => Promise<void>> = [];
    let seq = 0;

    beforeAll(async () => {
      ok = await target.available();
    });

    afterEach(async () => {
      for (const stop of stoppers.reverse()) await stop().catch(() => {});
      await target.cleanup?.(ns, transports);
      for (const t of transports) await t.close().catch(() => {});
      transports = [];
      stoppers = [];
    });

    function fresh(): void {
      ns = target.namespace();
    }

    function transport(): Transport {
      const t = target.transport(ns);
      if (!transports.includes(t)) transports.push(t);
      return t;
    }

    async function worker(...register: object[]): Promise<Worker> {
      const w = new Worker({
        transport: transport(),
        entities: { failoverMs: 1500, ...target.entities?.(ns) },
        config: { heartbeatIntervalMs: 500 },
      });
      for (const r of register) w.register(r);
      await w.start();
      stoppers.push(() => w.stop({ graceful: false }));
      return w;
    }

    async function client(): Promise<Coordinator> {
      const c = new Coordinator({
        transport: transport(),
        config: { minWorkers: 0, maxWorkers: 1, autoScale: false },
        entities: target.entities?.(ns),
      });
      await c.start();
      stoppers.push(() => c.stop());
      return c;
    }

    const name = (base: string) => `${base}${++seq}`;

    it("answers ask() with the snapshot after the event, and get() with what is stored", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const Log = logEntity(name("log"), { partitions: 4 });
      await worker(Log);
      const c = await client();
      const ref = c.entity(Log, "a-1");
      expect(await ref.get()).toBeNull();
      await ref.send({ type: "APPEND", n: 1 });
      const snap = await ref.ask({ type: "APPEND", n: 2 });
      expect(snap).toEqual({
        id: "a-1",
        value: "open",
        context: { log: [1, 2] },
        status: "active",
        version: 2,
      });
      expect(await ref.get()).toEqual(snap);
    });

    it("applies one sender's events to an id in the order sent", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const Log = logEntity(name("log"), { partitions: 2, inFlight: 8 });
      await worker(Log);
      const c = await client();
      const ref = c.entity(Log, "ordered");
      for (let i = 0; i < 60; i++) await ref.send({ type: "APPEND", n: i });
      const last = await ref.ask({ type: "APPEND", n: 60 });
      expect(last.context.log).toEqual(Array.from({ length: 61 }, (_, i) => i));
      expect(last.version).toBe(61);
    });

    it("spreads ids over the workers' partitions and keeps each id's order", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const Log = logEntity(name("log"), { partitions: 8 });
      const w1 = await worker(Log);
      const w2 = await worker(Log);
      const c = await client();
      await eventually(
        () =>
          w1.entityStats[0]!.partitions.length + w2.entityStats[0]!.partitions.length === 8 &&
          w1.entityStats[0]!.partitions.length > 0 &&
          w2.entityStats[0]!.partitions.length > 0,
        () => `both workers holding partitions: ${JSON.stringify([w1.entityStats, w2.entityStats])}`,
      );
      const ids = Array.from({ length: 24 }, (_, i) => `id-${i}`);
      const sends: Array<Promise<unknown>> = [];
      for (let n = 0; n < 8; n++)
        for (const id of ids) sends.push(c.entity(Log, id).send({ type: "APPEND", n }));
      await Promise.all(sends);
      const finals = await Promise.all(ids.map((id) => c.entity(Log, id).ask({ type: "APPEND", n: 8 })));
      for (const f of finals) expect(f.context.log).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
      expect(w1.entityStats[0]!.applied).toBeGreaterThan(0);
      expect(w2.entityStats[0]!.applied).toBeGreaterThan(0);
    });

    it("answers a typed error when no transition takes the event or the machine throws; nothing changes", async ({
      skip,
    }) => {
      if (!ok) skip();
      fresh();
      const Log = logEntity(name("log"));
      await worker(Log);
      const c = await client();
      const ref = c.entity(Log, "e-1");
      await ref.ask({ type: "APPEND", n: 1 });
      const rejected = ref.ask({ type: "NOTHING" });
      await expect(rejected).rejects.toBeInstanceOf(EntityRejectedError);
      await expect(rejected).rejects.toMatchObject({
        code: "FA_ENTITY_REJECTED",
        eventType: "NOTHING",
        state: "open",
      });
      const failed = ref.ask({ type: "BOOM" });
      await expect(failed).rejects.toBeInstanceOf(EntityEventError);
      await expect(failed).rejects.toMatchObject({
        code: "FA_ENTITY_EVENT_FAILED",
        reason: "the machine blew up",
      });
      expect(await ref.get()).toMatchObject({ context: { log: [1] }, version: 1 });
    });

    it("applies an event id once, however often it is sent", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const Log = logEntity(name("log"));
      await worker(Log);
      const c = await client();
      const ref = c.entity(Log, "once");
      await ref.send({ type: "APPEND", n: 1 }, { id: "evt-1" });
      await ref.send({ type: "APPEND", n: 1 }, { id: "evt-1" });
      const again = await ref.ask({ type: "APPEND", n: 1 }, { id: "evt-1" });
      expect(again.context.log).toEqual([1]);
      expect((await ref.ask({ type: "APPEND", n: 2 })).context.log).toEqual([1, 2]);
    });

    it("passivates entities beyond maxActive and idle ones, and rehydrates them from the store", async ({
      skip,
    }) => {
      if (!ok) skip();
      fresh();
      const Log = logEntity(name("log"), { partitions: 1, maxActive: 2, passivateAfterMs: 300 });
      const w = await worker(Log);
      const c = await client();
      for (let i = 0; i < 5; i++) await c.entity(Log, `p-${i}`).ask({ type: "APPEND", n: i });
      expect(w.entityStats[0]!.active).toBeLessThanOrEqual(2);
      for (let i = 0; i < 5; i++) {
        expect((await c.entity(Log, `p-${i}`).ask({ type: "APPEND", n: 10 })).context.log).toEqual([i, 10]);
      }
      await eventually(() => w.entityStats[0]!.active === 0, "idle entities passivated");
      expect((await c.entity(Log, "p-0").ask({ type: "APPEND", n: 20 })).context.log).toEqual([0, 10, 20]);
    });

    it("fires an `after` delay durably, and not after the state was left", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const Order = defineEntity(name("order"), orderMachine(400), { partitions: 2 });
      await worker(Order);
      const c = await client();
      const unpaid = c.entity(Order, "unpaid");
      const paid = c.entity(Order, "paid");
      await unpaid.ask({ type: "ADD_ITEM", sku: "a", price: 5 });
      await paid.ask({ type: "ADD_ITEM", sku: "b", price: 7 });
      expect((await unpaid.ask({ type: "CHECKOUT" })).value).toBe("awaitingPayment");
      await paid.ask({ type: "CHECKOUT" });
      expect((await paid.ask({ type: "PAY", amount: 7 })).value).toBe("paid");
      await eventually(async () => (await unpaid.get())?.value === "cancelled", "the unpaid order cancelled");
      expect(await unpaid.get()).toMatchObject({ status: "done", version: 3 });
      await expect(paid.ask({ type: "PAY", amount: 7 })).rejects.toBeInstanceOf(EntityRejectedError);
      expect(await paid.get()).toMatchObject({ value: "paid", version: 3 });
    });

    it("fires a timer after its holder stopped and another worker took over", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const Order = defineEntity(name("order"), orderMachine(800), { partitions: 1 });
      const first = await worker(Order);
      const c = await client();
      const ref = c.entity(Order, "handed-over");
      await ref.ask({ type: "CHECKOUT" });
      await first.stop({ graceful: true });
      await worker(Order);
      await eventually(
        async () => (await ref.get())?.value === "cancelled",
        "the timer fired on the new holder",
      );
    });

    it("fires a timer that fell due while no worker was running, once one starts", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const Order = defineEntity(name("order"), orderMachine(300), { partitions: 2 });
      const first = await worker(Order);
      const c = await client();
      const ref = c.entity(Order, "restarted");
      await ref.ask({ type: "ADD_ITEM", sku: "a", price: 1 });
      expect((await ref.ask({ type: "CHECKOUT" })).value).toBe("awaitingPayment");
      await first.stop({ graceful: true });
      await new Promise((r) => setTimeout(r, 900)); // past the pay window, no worker anywhere
      expect(await ref.get()).toMatchObject({ value: "awaitingPayment" });
      await worker(Order);
      await eventually(async () => (await ref.get())?.value === "cancelled", "the overdue timer fired");
      expect(await ref.get()).toMatchObject({ status: "done", version: 3 });
    });

    it("fires a timer whose holder died while its timer message was leaving", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const Order = defineEntity(name("order"), orderMachine(300), { partitions: 1 });
      // The first worker's timer messages never leave: its process dies in the middle of sending.
      let hang = false;
      const dyingSends: Array<(error: Error) => void> = [];
      const base = transport();
      const dying = new Proxy(base, {
        get(target, prop) {
          if (prop === "entityMailbox") {
            return () => {
              const mailbox = target.entityMailbox?.() as NonNullable<
                ReturnType<NonNullable<Transport["entityMailbox"]>>
              >;
              return new Proxy(mailbox, {
                get(m, p) {
                  if (p === "sendLater" && hang) {
                    return () => new Promise((_, reject) => dyingSends.push(reject));
                  }
                  const v = Reflect.get(m, p);
                  return typeof v === "function" ? v.bind(m) : v;
                },
              });
            };
          }
          const v = Reflect.get(target, prop);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
      const first = new Worker({
        transport: dying,
        entities: { failoverMs: 1500, ...target.entities?.(ns) },
        config: { heartbeatIntervalMs: 500 },
      });
      first.register(Order);
      await first.start();
      stoppers.push(() => first.stop({ graceful: false }));
      const c = await client();
      const ref = c.entity(Order, "died-sending");
      await ref.ask({ type: "ADD_ITEM", sku: "a", price: 1 });
      hang = true;
      await ref.send({ type: "CHECKOUT" });
      await eventually(() => dyingSends.length > 0, "the holder sending the timer");
      // The process dies: whatever it was sending never arrives.
      const stopping = first.stop({ graceful: false });
      for (const fail of dyingSends) fail(new Error("the process died"));
      await stopping;
      await worker(Order);
      await eventually(
        async () => (await ref.get())?.value === "cancelled",
        "the timer fired on the next holder",
      );
      expect(await ref.get()).toMatchObject({ status: "done", version: 3 });
    });

    it("hands partitions over when a worker stops, without losing or repeating an event", async ({
      skip,
    }) => {
      if (!ok) skip();
      fresh();
      const Log = logEntity(name("log"), { partitions: 4 });
      const w1 = await worker(Log);
      const w2 = await worker(Log);
      const c = await client();
      const ids = ["h-1", "h-2", "h-3", "h-4", "h-5", "h-6"];
      const sending = (async () => {
        for (let n = 0; n < 30; n++)
          await Promise.all(ids.map((id) => c.entity(Log, id).send({ type: "APPEND", n })));
      })();
      // Stop a worker while it applies events: which one holds the ids' partitions depends on the
      // (random) worker ids, so take one that is at work.
      let holder: typeof w1 | undefined;
      await eventually(() => {
        holder = [w1, w2].find((w) => w.entityStats[0]!.applied > 10);
        return holder !== undefined;
      }, "a worker at work");
      const other = holder === w1 ? w2 : w1;
      await holder?.stop({ graceful: true });
      await sending;
      for (const id of ids) {
        const f = await c.entity(Log, id).ask({ type: "APPEND", n: 30 });
        expect(f.context.log).toEqual(Array.from({ length: 31 }, (_, i) => i));
      }
      expect(other.entityStats[0]!.partitions).toHaveLength(4);
    });

    it("refuses a snapshot the machine's new version cannot restore, unless it migrates it", async ({
      skip,
    }) => {
      if (!ok) skip();
      fresh();
      const type = name("versioned");
      const V1 = logEntity(type, { version: 1 });
      const w = await worker(V1);
      const c = await client();
      await c.entity(V1, "v").ask({ type: "APPEND", n: 1 });
      await w.stop({ graceful: true });
      const V2 = logEntity(type, { version: 2 });
      const w2 = await worker(V2);
      const refused = c.entity(V2, "v").ask({ type: "APPEND", n: 2 });
      await expect(refused).rejects.toBeInstanceOf(EntitySnapshotError);
      await expect(refused).rejects.toThrow(/version 1.*version 2/);
      expect(await c.entity(V2, "v").get()).toMatchObject({ context: { log: [1] }, version: 1 });
      await w2.stop({ graceful: true });
      const V2m = logEntity(type, {
        version: 2,
        migrate: (snapshot) => {
          const s = snapshot as { context: { log: number[] } };
          return { ...s, context: { log: s.context.log.map((n) => n * 100) } };
        },
      });
      const w2m = await worker(V2m);
      expect((await c.entity(V2m, "v").ask({ type: "APPEND", n: 2 })).context.log).toEqual([100, 2]);
      await w2m.stop({ graceful: true });
      // An older machine (a rollback, a worker not yet upgraded) never takes a newer snapshot, even
      // with a migrate() of its own: it would be asked to migrate forwards what it cannot know.
      const V1m = logEntity(type, { version: 1, migrate: (snapshot) => snapshot });
      const old = await worker(V1m);
      const older = c.entity(V1m, "v").ask({ type: "APPEND", n: 3 });
      await expect(older).rejects.toBeInstanceOf(EntitySnapshotError);
      await expect(older).rejects.toThrow(/version 2.*newer than this one \(version 1\)/);
      await old.stop({ graceful: true });
      // A migrate() whose result the machine cannot restore: a typed error, the state left as it was.
      const V3 = logEntity(type, {
        version: 3,
        migrate: (snapshot) => ({ ...(snapshot as object), value: "no-such-state" }),
      });
      await worker(V3);
      const broken = c.entity(V3, "v").ask({ type: "APPEND", n: 4 });
      await expect(broken).rejects.toBeInstanceOf(EntitySnapshotError);
      await expect(broken).rejects.toThrow(/cannot be restored by this machine \(version 3\)/);
      expect(await c.entity(V3, "v").get()).toMatchObject({ context: { log: [100, 2] }, version: 2 });
    });

    it("lets a machine send to another entity and emit on the event bus, each once", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const Log = logEntity(name("log"));
      const Relay = defineEntity(name("relay"), relayMachine(Log));
      const published: Array<{ type: string; data: unknown; options: unknown }> = [];
      const events = {
        publish: async (type: string, data: unknown, options: unknown) => {
          published.push({ type, data, options });
        },
      };
      const w = new Worker({
        transport: transport(),
        entities: { failoverMs: 1500, events, ...target.entities?.(ns) },
      });
      w.register(Log).register(Relay);
      await w.start();
      stoppers.push(() => w.stop({ graceful: false }));
      const c = await client();
      await c.entity(Relay, "r").ask({ type: "HIT", to: "sink" });
      await c.entity(Relay, "r").ask({ type: "HIT", to: "sink" });
      await eventually(async () => (await c.entity(Log, "sink").get())?.version === 2, "the relayed events");
      expect((await c.entity(Log, "sink").get())!.context).toEqual({ log: [1, 2] });
      await eventually(() => published.length === 2, "the emitted events");
      expect(published.map((p) => p.type)).toEqual(["counter.hit", "counter.hit"]);
      expect(published[1]).toMatchObject({
        data: { hits: 2 },
        options: { key: expect.stringContaining(":r") },
      });
    });

    it("publishes emit() events on the transport's event bus when no sink is given", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const probe = transport();
      if (!probe.eventLog) skip(); // this transport has no event log (yet)
      const Log = logEntity(name("log"));
      const Relay = defineEntity(name("relay"), relayMachine(Log));
      await worker(Log, Relay);
      const c = await client();
      const bus = new EventBus({ transport: probe });
      const got: Array<{ type: string; data: unknown; key?: string }> = [];
      const sub = await bus.subscribe("counter.hit", async (event) => void got.push(event), {
        group: name("g"),
        from: "all",
      });
      stoppers.push(() => sub.close());
      await c.entity(Relay, "r").ask({ type: "HIT", to: "sink" });
      await eventually(() => got.length === 1, "the emitted event on the bus");
      expect(got[0]).toMatchObject({ type: "counter.hit", data: { hits: 1 }, key: `${Relay.name}:r` });
    });

    it("runs @Entity classes with the same guarantees", async ({ skip }) => {
      if (!ok) skip();
      fresh();
      const cartName = name("cart");
      class Cart {
        initial() {
          return { items: [] as string[] };
        }
        add(state: { items: string[] }, event: { type: "ADD"; sku: string }) {
          return { items: [...state.items, event.sku] };
        }
        fail(): never {
          throw new Error("no such thing");
        }
      }
      // As experimentalDecorators would apply @Handler("ADD"), @Handler("FAIL") and @Entity(cartName).
      for (const [method, type] of [
        ["add", "ADD"],
        ["fail", "FAIL"],
      ] as const) {
        const descriptor = Object.getOwnPropertyDescriptor(Cart.prototype, method);
        Handler(type)(Cart.prototype, method, descriptor as TypedPropertyDescriptor<() => unknown>);
      }
      Entity(cartName, { partitions: 2 })(Cart);
      await worker(new Cart());
      const c = await client();
      const cart = c.entity(Cart, "c-1");
      await cart.send({ type: "ADD", sku: "a" });
      expect(await cart.ask({ type: "ADD", sku: "b" })).toEqual({
        id: "c-1",
        value: "active",
        context: { items: ["a", "b"] },
        status: "active",
        version: 2,
      });
      await expect(cart.ask({ type: "FAIL" })).rejects.toBeInstanceOf(EntityEventError);
      await expect(cart.ask({ type: "UNKNOWN" })).rejects.toBeInstanceOf(EntityRejectedError);
      expect(await cart.get()).toMatchObject({ version: 2 });
    });
  });
}
