import { describe, expect, it } from "vitest";
import { decodeControl, decodeTask, decodeTaskEvents, decodeWorkerEvent, encode } from "../../src/codec.js";
import { MalformedMessageError, NotSerializableError, PayloadTooLargeError } from "../../src/errors.js";

const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const task = {
  v: 1,
  id: "t1",
  type: "compute",
  data: { x: 1 },
  priority: 5,
  retries: 0,
  timeoutMs: 1000,
  tags: [],
  metadata: {},
  enqueuedAt: 1,
  queue: "default",
  headers: {},
};

describe("codec", () => {
  it("round-trips a task envelope", () => {
    expect(decodeTask(encode(task, 1e6))).toEqual(task);
    const replying = { ...task, replyTo: "ns:sub.0b8c5f3e-2f1a-4c7e-9d2b-5a6e7f8a9b0c" };
    expect(decodeTask(encode(replying, 1e6))).toEqual(replying);
  });

  it("restores the fields left out of the wire form when empty", () => {
    const { retries: _r, tags: _t, metadata: _m, headers: _h, ...minimal } = task;
    expect(decodeTask(enc(minimal))).toEqual({ ...minimal, retries: 0, tags: [], metadata: {}, headers: {} });
  });

  it("refuses values JSON would silently change, naming the key", () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ f: () => 1 }, /key "f" is a function/],
      [{ n: 10n }, /key "n" is a bigint/],
      [{ m: new Map() }, /key "m" is a Map/],
      [{ s: new Set([1]) }, /key "s" is a Set/],
      [{ nan: Number.NaN }, /key "nan" is the number NaN/],
      [{ inf: Number.POSITIVE_INFINITY }, /the number Infinity/],
      [{ a: [1, undefined] }, /undefined inside an array/],
      [{ sym: Symbol("x") }, /a symbol/],
      [new (class Point {})(), /is a Point/],
    ];
    for (const [value, message] of cases) {
      expect(() => encode(value, 1e6), String(message)).toThrow(NotSerializableError);
      expect(() => encode(value, 1e6)).toThrow(message);
    }
  });

  it("refuses circular data with a clear error", () => {
    const a: Record<string, unknown> = {};
    a["self"] = a;
    expect(() => encode(a, 1e6)).toThrow(NotSerializableError);
  });

  it("accepts plain JSON, dates (as ISO strings) and absent optional properties", () => {
    const bytes = encode({ d: new Date(0), o: { x: undefined, y: null }, z: Object.create(null) }, 1e6);
    expect(JSON.parse(new TextDecoder().decode(bytes))).toEqual({
      d: "1970-01-01T00:00:00.000Z",
      o: { y: null },
      z: {},
    });
  });

  it("refuses a payload over the limit, with both sizes in the message", () => {
    const error = (() => {
      try {
        encode({ s: "x".repeat(100) }, 50, "task data");
      } catch (e) {
        return e as PayloadTooLargeError;
      }
    })();
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(error?.message).toMatch(/task data encodes to 108 bytes, over the limit of 50 bytes/);
    expect(error?.limitBytes).toBe(50);
  });

  it("rejects malformed bytes as MalformedMessageError, never anything else", () => {
    const bad = [
      new Uint8Array([0xff, 0xfe, 0x00]),
      enc("{not json"),
      enc("[1,2]"),
      enc("null"),
      enc({ ...task, v: 2 }),
      enc({ ...task, id: "" }),
      enc({ ...task, priority: "high" }),
      enc({ ...task, tags: [1] }),
      enc({ ...task, metadata: [] }),
      enc({ ...task, replyTo: 42 }),
      enc({ ...task, replyTo: "x".repeat(256) }),
      enc({ v: 1 }),
    ];
    for (const bytes of bad) expect(() => decodeTask(bytes)).toThrow(MalformedMessageError);
    expect(() => decodeTaskEvents(enc({ v: 1, kind: "exploded", taskId: "t", at: 1 }))).toThrow(
      MalformedMessageError,
    );
    expect(() => decodeWorkerEvent(enc({ v: 1, kind: "heartbeat", info: {} }))).toThrow(
      MalformedMessageError,
    );
    expect(() => decodeControl(enc({ v: 1, kind: "scale", workers: -1 }))).toThrow(MalformedMessageError);
  });

  it("decodes a batch of task events, and rejects a batch with a bad member", () => {
    const a = { v: 1, kind: "started", taskId: "t1", at: 1 };
    const b = { v: 1, kind: "completed", taskId: "t1", at: 2, result: 42 };
    expect(decodeTaskEvents(enc(a))).toEqual([a]);
    expect(decodeTaskEvents(enc({ v: 1, kind: "batch", events: [a, b] }))).toEqual([a, b]);
    expect(() => decodeTaskEvents(enc({ v: 1, kind: "batch", events: [a, { v: 1, kind: "nope" }] }))).toThrow(
      MalformedMessageError,
    );
    expect(() => decodeTaskEvents(enc({ v: 1, kind: "batch", events: "x" }))).toThrow(MalformedMessageError);
  });

  it("parses without prototype pollution", () => {
    const evil = `{"v":1,"id":"t","type":"x","data":{"__proto__":{"polluted":true},"constructor":{"prototype":{"p":1}}},"priority":5,"retries":0,"timeoutMs":1,"tags":[],"metadata":{"__proto__":{"admin":true}},"enqueuedAt":1,"queue":"q","headers":{}}`;
    const t = decodeTask(enc(evil));
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(Object.keys(t.data as object)).toEqual([]);
    expect((t.metadata as Record<string, unknown>)["admin"]).toBeUndefined();
    expect(Object.getPrototypeOf(t.metadata)).toBe(Object.prototype);
  });
});
