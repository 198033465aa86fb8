/** planBatch: the pure part of a holder's work on one entity (dedup, timers, outbox, answers). */
import { describe, expect, it } from "vitest";
import { type AnyEntityDefinition, defineEntity } from "../../../src/entities/define-entity.js";
import type { EntityMessage } from "../../../src/entities/entity-messages.js";
import { decodeRecord, encodeRecord } from "../../../src/entities/entity-record.js";
import { type Loaded, planBatch } from "../../../src/entities/entity-step.js";
import { ConfigError, MalformedMessageError } from "../../../src/errors.js";
import { logEntity, orderMachine, relayMachine } from "../../conformance/entity-machines.js";

const Log = logEntity("log", { dedupWindow: 3, inFlight: 2 });
const Order = defineEntity("order", orderMachine(1000));

function fresh(def: AnyEntityDefinition = Log, id = "x"): Loaded {
  const { state, effects } = def.logic.initial(id);
  return {
    state,
    revision: null,
    unsent: [],
    initialEffects: effects,
    record: { v: 1, mv: def.options.version, n: 0, s: undefined, ids: [], tm: {}, ob: [], at: 0 },
  };
}

const ev = (id: string, e: EntityMessage["e"]): EntityMessage => ({ v: 1, k: "ev", to: "x", id, e });

describe("planBatch", () => {
  it("applies a batch in order, answering each event with the snapshot after it", () => {
    const plan = planBatch(
      Log,
      "x",
      fresh(),
      [ev("a", { type: "APPEND", n: 1 }), ev("b", { type: "APPEND", n: 2 })],
      1000,
    );
    expect(plan.changed).toBe(true);
    expect(plan.outcomes.map((o) => o.kind === "ok" && o.snapshot.context)).toEqual([
      { log: [1] },
      { log: [1, 2] },
    ]);
    expect(plan.next.record).toMatchObject({ n: 2, ids: ["a", "b"], mv: 1 });
  });

  it("answers a remembered event id as a duplicate without applying it; forgets beyond dedupWindow", () => {
    const first = planBatch(
      Log,
      "x",
      fresh(),
      ["a", "b", "c", "d"].map((id, n) => ev(id, { type: "APPEND", n })),
      0,
    );
    expect(first.next.record.ids).toEqual(["b", "c", "d"]);
    first.next.revision = 1; // as the holder sets it once the write succeeded
    const again = planBatch(Log, "x", first.next, [ev("c", { type: "APPEND", n: 9 })], 0);
    expect(again.changed).toBe(false);
    expect(again.outcomes[0]).toMatchObject({ kind: "ok", dup: true, snapshot: { version: 4 } });
    expect(planBatch(Log, "x", first.next, [ev("a", { type: "APPEND", n: 9 })], 0).next.record.n).toBe(5);
  });

  it("skips a delivery whose mailbox sequence is at or below the last taken, even beyond dedupWindow", () => {
    const first = planBatch(
      Log,
      "x",
      fresh(),
      ["a", "b", "c", "d", "e"].map((id, n) => ev(id, { type: "APPEND", n })),
      0,
      [10, 11, 12, 13, 14],
    );
    expect(first.next.record).toMatchObject({ n: 5, ids: ["c", "d", "e"], sq: 14 });
    // Stored and read back (the holder reloads it after a hand-over).
    const stored = {
      ...first.next,
      revision: 1,
      record: decodeRecord(encodeRecord(first.next.record, 1 << 20)),
    };
    expect(stored.record.sq).toBe(14);
    // "a" (sequence 10) comes again after newer ones: its id left the window, its sequence did not.
    const again = planBatch(
      Log,
      "x",
      stored,
      [ev("a", { type: "APPEND", n: 0 }), ev("f", { type: "APPEND", n: 5 })],
      0,
      [10, 15],
    );
    expect(again.outcomes[0]).toMatchObject({ kind: "ok", dup: true, snapshot: { version: 5 } });
    expect(again.next.record).toMatchObject({ n: 6, sq: 15 });
    expect(again.outcomes[1]).toMatchObject({ snapshot: { context: { log: [0, 1, 2, 3, 4, 5] } } });
    // A stale timer message is skipped the same way.
    const tm: EntityMessage = {
      v: 1,
      k: "tm",
      to: "x",
      id: "tm.1",
      e: { type: "T" },
      tn: "t",
      tt: "1",
      at: 0,
    };
    expect(planBatch(Log, "x", stored, [tm], 0, [12]).outcomes).toEqual([{ kind: "skip" }]);
    // Where the broker has no sequence (RabbitMQ, memory) only the id window applies.
    expect(planBatch(Log, "x", stored, [ev("a", { type: "APPEND", n: 0 })], 0).next.record.n).toBe(6);
  });

  it("loads a record written without a sequence and starts keeping one", () => {
    // A record as written before the sequence existed (RabbitMQ and memory still write these).
    const before = planBatch(Log, "x", fresh(), [ev("a", { type: "APPEND", n: 0 })], 0).next.record;
    const bytes = encodeRecord(before, 1 << 20);
    expect(Buffer.from(bytes).toString()).not.toContain('"sq"');
    const old = decodeRecord(bytes);
    expect(old.sq).toBeUndefined();
    const loaded: Loaded = { state: Log.logic.restore(old.s), record: old, revision: 3, unsent: [] };
    const plan = planBatch(Log, "x", loaded, [ev("c", { type: "APPEND", n: 2 })], 0, [7]);
    expect(plan.next.record).toMatchObject({ n: 2, sq: 7 });
    expect(() => decodeRecord(Buffer.from('{"v":1,"mv":1,"n":0,"s":{},"ids":[],"sq":-1}'))).toThrow(
      MalformedMessageError,
    );
  });

  it("records rejected and failed events (a redelivery is not re-evaluated) without changing the state", () => {
    const plan = planBatch(Log, "x", fresh(), [ev("r", { type: "NOTHING" }), ev("f", { type: "BOOM" })], 0);
    expect(plan.outcomes).toMatchObject([
      { kind: "error", code: "FA_ENTITY_REJECTED", eventType: "NOTHING", state: "open" },
      { kind: "error", code: "FA_ENTITY_EVENT_FAILED", reason: "the machine blew up" },
    ]);
    expect(plan.next.record).toMatchObject({ n: 0, ids: ["r", "f"] });
  });

  it("stores a durable timer with a token; fires it once, skips a stale one, reschedules an early one", () => {
    const checkout = planBatch(Order, "x", fresh(Order), [ev("c", { type: "CHECKOUT" })], 10_000);
    const timerId = "xstate.after.1000.order.awaitingPayment";
    const timer = checkout.next.record.tm[timerId]!;
    expect(timer).toMatchObject({ at: 11_000, e: { type: timerId } });
    expect(checkout.next.record.ob).toEqual([{ k: "timer", n: timerId, t: timer.t }]);
    const fire = (t: string): EntityMessage => ({
      v: 1,
      k: "tm",
      to: "x",
      id: `tm.${t}`,
      e: { type: timerId },
      tn: timerId,
      tt: t,
      at: 11_000,
    });
    expect(planBatch(Order, "x", checkout.next, [fire(timer.t)], 10_500).outcomes[0]).toEqual({
      kind: "early",
      delayMs: 500,
    });
    expect(planBatch(Order, "x", checkout.next, [fire("stale")], 11_000).outcomes[0]).toEqual({
      kind: "skip",
    });
    const fired = planBatch(Order, "x", checkout.next, [fire(timer.t)], 11_000);
    expect(fired.outcomes[0]).toMatchObject({ kind: "ok", snapshot: { value: "cancelled" } });
    expect(fired.next.record.tm).toEqual({});
    expect(planBatch(Order, "x", fired.next, [fire(timer.t)], 11_000).outcomes[0]).toEqual({ kind: "skip" });
  });

  it("cancels a timer when its state is left", () => {
    const checkout = planBatch(
      Order,
      "x",
      fresh(Order),
      [ev("c", { type: "CHECKOUT" }), ev("p", { type: "PAY", amount: 0 })],
      0,
    );
    expect(checkout.next.record.tm).toEqual({});
    expect(checkout.outcomes[1]).toMatchObject({ snapshot: { value: "paid", status: "done" } });
  });

  it("puts sends and emits in the outbox with ids that are the same for the same step", () => {
    const Relay = defineEntity("relay", relayMachine(Log));
    const a = planBatch(Relay, "r", fresh(Relay, "r"), [ev("h", { type: "HIT", to: "t-1" })], 0);
    const b = planBatch(Relay, "r", fresh(Relay, "r"), [ev("other", { type: "HIT", to: "t-1" })], 0);
    expect(a.next.record.ob).toMatchObject([
      { k: "send", b: "log", p: 16, to: "t-1", e: { type: "APPEND", n: 1 } },
      { k: "emit", e: { type: "counter.hit", hits: 1 } },
    ]);
    expect(a.next.record.ob.map((e) => "id" in e && e.id)).toEqual(
      b.next.record.ob.map((e) => "id" in e && e.id),
    );
    const next = planBatch(Relay, "r", a.next, [ev("h2", { type: "HIT", to: "t-1" })], 0);
    expect(new Set(next.next.record.ob.map((e) => "id" in e && e.id)).size).toBe(4);
  });
});

describe("entity records", () => {
  it("round-trip, and refuse what is not one", () => {
    const plan = planBatch(Order, "x", fresh(Order), [ev("c", { type: "CHECKOUT" })], 5);
    const bytes = encodeRecord(plan.next.record, 1 << 20);
    expect(decodeRecord(bytes)).toEqual(plan.next.record);
    for (const bad of [
      '{"v":1}',
      '{"v":1,"mv":1,"n":-1,"s":{},"ids":[]}',
      '{"v":1,"mv":1,"n":0,"s":{},"ids":[3]}',
      "[]",
      "nope",
    ]) {
      expect(() => decodeRecord(Buffer.from(bad))).toThrow(MalformedMessageError);
    }
  });
});

describe("entity records: event ids stored by their common prefix", () => {
  it("round-trips ids that share a prefix, share none, or split a surrogate pair, and stays small", () => {
    const base = planBatch(Order, "x", fresh(Order), [ev("c", { type: "CHECKOUT" })], 5).next.record;
    const sender = Array.from({ length: 32 }, (_, i) => `ev-AbCdEfGhIjKl-${(1000 + i).toString(36)}`);
    for (const ids of [
      sender,
      [...sender.slice(0, 5), "other-1", "ev-x"],
      ["only"],
      ["same", "same"],
      ["\ud83d\ude00a", "\ud83d\ude01b"],
      ["", "a"],
      ["ab-1", 'ab-2"ab-3', 'ab-"x'],
      [",a", ",b"],
      ["ab", "ab"],
      [],
    ]) {
      const record = { ...base, ids };
      const bytes = encodeRecord(record, 1 << 20);
      expect(decodeRecord(bytes)).toEqual(record);
    }
    const compact = encodeRecord({ ...base, ids: sender }, 1 << 20).byteLength;
    const plain = Buffer.byteLength(JSON.stringify(sender));
    expect(compact).toBeLessThan(plain);
    expect(() => decodeRecord(Buffer.from('{"v":1,"mv":1,"n":0,"s":{},"ip":3,"ids":["a"]}'))).toThrow(
      MalformedMessageError,
    );
  });
});

describe("defineEntity options", () => {
  it("refuses unknown keys, out-of-range values and a dedupWindow below inFlight", () => {
    expect(() => logEntity("a", { partitions: 0 })).toThrow(ConfigError);
    expect(() => logEntity("a", { partitions: 257 })).toThrow(ConfigError);
    expect(() => logEntity("a", { inFlight: 64, dedupWindow: 8 })).toThrow(/at least inFlight/);
    expect(() => logEntity("a", { colour: "red" } as never)).toThrow(ConfigError);
    expect(() => logEntity("a b")).toThrow(/Invalid/);
    expect(() => defineEntity("x", {} as never)).toThrow(ConfigError);
    expect(logEntity("a", { inFlight: 64 }).options.dedupWindow).toBe(64);
  });
});
