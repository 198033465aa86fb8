/**
 * The one state-store conformance suite (transports/state-store.ts), run against every store:
 * in memory, JetStream KV, PostgreSQL. Each *.state-store.conformance.test.ts calls
 * `describeStateStoreConformance` with a target.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  FastAgenticError,
  InvalidNameError,
  PayloadTooLargeError,
  StateConflictError,
} from "../../src/errors.js";
import type { StateStore } from "../../transports/state-store.js";

export interface StateStoreTarget {
  name: string;
  available(): Promise<boolean>;
  /** A new store with a scope space of its own (a bucket, a table…). */
  create(): Promise<StateStore> | StateStore;
  /** Another client of the same store (another process's view): same bucket or table. */
  peer(store: StateStore): Promise<StateStore> | StateStore;
  /** Removes what the store created (a bucket, a table). */
  cleanup?(store: StateStore): Promise<void>;
}

const enc = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));
const dec = (b: Uint8Array) => Buffer.from(b).toString("utf8");

export function describeStateStoreConformance(target: StateStoreTarget): void {
  describe(`state store conformance: ${target.name}`, () => {
    let ok = false;
    const open: StateStore[] = [];
    const owners: StateStore[] = [];

    beforeAll(async () => {
      ok = await target.available();
    });

    afterEach(async () => {
      for (const s of owners.splice(0)) await target.cleanup?.(s);
      for (const s of open.splice(0)) await s.close();
    });

    async function store(): Promise<StateStore> {
      const s = await target.create();
      open.push(s);
      owners.push(s);
      await s.connect();
      return s;
    }

    async function peerOf(s: StateStore): Promise<StateStore> {
      const p = await target.peer(s);
      if (p !== s) open.push(p);
      await p.connect();
      return p;
    }

    it("reads null for a key never written, then what put() wrote, with its revision", async ({ skip }) => {
      if (!ok) skip();
      const s = await store();
      expect(await s.get("order", "o-1")).toBeNull();
      const revision = await s.put("order", "o-1", enc("first"), null);
      expect(Number.isSafeInteger(revision) && revision > 0).toBe(true);
      const got = await s.get("order", "o-1");
      expect(dec(got!.data)).toBe("first");
      expect(got!.revision).toBe(revision);
    });

    it("writes by compare-and-set: the current revision wins once, a stale one is refused", async ({
      skip,
    }) => {
      if (!ok) skip();
      const s = await store();
      const r1 = await s.put("order", "o-2", enc("v1"), null);
      const r2 = await s.put("order", "o-2", enc("v2"), r1);
      expect(r2).not.toBe(r1);
      const stale = s.put("order", "o-2", enc("stale"), r1);
      await expect(stale).rejects.toBeInstanceOf(StateConflictError);
      await expect(stale).rejects.toMatchObject({ code: "FA_STATE_CONFLICT", retryable: true });
      await expect(s.put("order", "o-2", enc("again"), null)).rejects.toBeInstanceOf(StateConflictError);
      await expect(s.put("order", "never-written", enc("x"), r2)).rejects.toBeInstanceOf(StateConflictError);
      expect(dec((await s.get("order", "o-2"))!.data)).toBe("v2");
    });

    it("lets exactly one of many racing writers from the same revision win", async ({ skip }) => {
      if (!ok) skip();
      const s = await store();
      const peer = await peerOf(s);
      const r1 = await s.put("race", "k", enc("start"), null);
      const writers = Array.from({ length: 12 }, (_, i) =>
        (i % 2 === 0 ? s : peer).put("race", "k", enc(`w${i}`), r1),
      );
      const results = await Promise.allSettled(writers);
      const won = results.filter((r) => r.status === "fulfilled");
      expect(won).toHaveLength(1);
      for (const r of results)
        if (r.status === "rejected") expect(r.reason).toBeInstanceOf(StateConflictError);
      const winner = results.findIndex((r) => r.status === "fulfilled");
      const got = await peer.get("race", "k");
      expect(dec(got!.data)).toBe(`w${winner}`);
      expect(got!.revision).toBe((won[0] as PromiseFulfilledResult<number>).value);
    });

    it("lets exactly one of two racing creators of a new key win", async ({ skip }) => {
      if (!ok) skip();
      const s = await store();
      const peer = await peerOf(s);
      const results = await Promise.allSettled([
        s.put("race", "new", enc("a"), null),
        peer.put("race", "new", enc("b"), null),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    });

    it("shows a write to another client of the same store", async ({ skip }) => {
      if (!ok) skip();
      const s = await store();
      const peer = await peerOf(s);
      const r1 = await s.put("order", "shared", enc("from s"), null);
      const seen = await peer.get("order", "shared");
      expect(dec(seen!.data)).toBe("from s");
      await peer.put("order", "shared", enc("from peer"), seen!.revision);
      await expect(s.put("order", "shared", enc("late"), r1)).rejects.toBeInstanceOf(StateConflictError);
    });

    it("keeps scopes and unusual keys apart, and round-trips every byte value", async ({ skip }) => {
      if (!ok) skip();
      const s = await store();
      const keys = [
        "a.b",
        "a_b",
        "a",
        "=YQ",
        "a/b",
        "a b",
        "ünï-cødé ✓",
        "x".repeat(256),
        "*",
        ">",
        "a..b",
        ".",
      ];
      for (const [i, key] of keys.entries()) await s.put("scope1", key, enc(`v${i}`), null);
      await s.put("scope2", "a", enc("other scope"), null);
      for (const [i, key] of keys.entries()) expect(dec((await s.get("scope1", key))!.data)).toBe(`v${i}`);
      expect(dec((await s.get("scope2", "a"))!.data)).toBe("other scope");
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      await s.put("bin", "all", bytes, null);
      expect([...(await s.get("bin", "all"))!.data]).toEqual([...bytes]);
      await s.put("bin", "empty", new Uint8Array(0), null);
      expect((await s.get("bin", "empty"))!.data.byteLength).toBe(0);
    });

    it("refuses invalid scopes and keys, and values over its limit, before writing", async ({ skip }) => {
      if (!ok) skip();
      const s = await store();
      for (const scope of ["", "a.b", "with space", "x".repeat(65), 5 as unknown as string]) {
        await expect(s.put(scope, "k", enc("x"), null)).rejects.toBeInstanceOf(InvalidNameError);
      }
      for (const key of ["", "x".repeat(257), "\ud800", 7 as unknown as string]) {
        await expect(s.get("ok", key)).rejects.toBeInstanceOf(InvalidNameError);
      }
      const big = new Uint8Array(s.maxValueBytes + 1);
      await expect(s.put("ok", "big", big, null)).rejects.toBeInstanceOf(PayloadTooLargeError);
      expect(await s.get("ok", "big")).toBeNull();
    });

    it("deletes a key (and nothing for an absent one); a deleted key can be created again", async ({
      skip,
    }) => {
      if (!ok) skip();
      const s = await store();
      const r1 = await s.put("order", "gone", enc("x"), null);
      await s.delete("order", "gone");
      await s.delete("order", "never");
      expect(await s.get("order", "gone")).toBeNull();
      await expect(s.put("order", "gone", enc("y"), r1)).rejects.toBeInstanceOf(StateConflictError);
      const r2 = await s.put("order", "gone", enc("y"), null);
      expect(r2).not.toBe(r1);
      expect(dec((await s.get("order", "gone"))!.data)).toBe("y");
    });

    it("closes idempotently; calls after close are refused with a typed error", async ({ skip }) => {
      if (!ok) skip();
      const s = await target.create();
      owners.push(s);
      await s.connect();
      await s.put("order", "c", enc("x"), null);
      await target.cleanup?.(s);
      owners.splice(owners.indexOf(s), 1);
      await s.close();
      await s.close();
      await expect(s.get("order", "c")).rejects.toBeInstanceOf(FastAgenticError);
    });
  });
}
