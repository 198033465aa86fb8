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

    it("judges each of many puts made at once (a host writing many ids) by its own compare-and-set", async ({
      skip,
    }) => {
      if (!ok) skip();
      const s = await store();
      const peer = await peerOf(s);
      const keys = Array.from({ length: 60 }, (_, i) => `b-${i}`);
      // Some keys exist already: creating them again in the burst is refused, the rest are created.
      const early = new Map<string, number>();
      for (const key of keys.slice(0, 6)) early.set(key, await peer.put("batch", key, enc("peer"), null));
      const created = await Promise.allSettled(keys.map((key) => s.put("batch", key, enc(`c-${key}`), null)));
      const revisions = new Map<string, number>(early);
      created.forEach((r, i) => {
        const key = keys[i] as string;
        if (early.has(key)) {
          expect(r.status).toBe("rejected");
          expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StateConflictError);
        } else {
          expect(r.status).toBe("fulfilled");
          revisions.set(key, (r as PromiseFulfilledResult<number>).value);
        }
      });
      expect(new Set(revisions.values()).size).toBe(keys.length);
      // A burst of updates, every third from a stale revision (the peer wrote since): only those are
      // refused; the same key in another scope is another value.
      for (const key of keys.filter((_, i) => i % 3 === 0)) {
        revisions.set(key, await peer.put("batch", key, enc("peer-newer"), revisions.get(key) as number));
      }
      const stale = new Map(early);
      const updates = keys.map((key, i) => {
        const expected =
          i % 3 === 0
            ? created[i]?.status === "fulfilled"
              ? (created[i] as PromiseFulfilledResult<number>).value
              : (stale.get(key) as number)
            : (revisions.get(key) as number);
        return s.put("batch", key, enc(`u-${key}`), expected);
      });
      const other = keys.slice(0, 10).map((key) => s.put("batch2", key, enc(`o-${key}`), null));
      const results = await Promise.allSettled(updates);
      expect((await Promise.allSettled(other)).every((r) => r.status === "fulfilled")).toBe(true);
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i] as string;
        const got = await peer.get("batch", key);
        if (i % 3 === 0) {
          expect(results[i]?.status).toBe("rejected");
          expect((results[i] as PromiseRejectedResult).reason).toBeInstanceOf(StateConflictError);
          expect(dec(got!.data)).toBe("peer-newer");
          expect(got!.revision).toBe(revisions.get(key));
        } else {
          expect(results[i]?.status).toBe("fulfilled");
          expect(dec(got!.data)).toBe(`u-${key}`);
          expect(got!.revision).toBe((results[i] as PromiseFulfilledResult<number>).value);
        }
      }
      expect(dec((await s.get("batch2", "b-3"))!.data)).toBe("o-b-3");
      // The same key twice in one burst, from the same revision: one wins.
      const current = (await s.get("batch", "b-1"))!.revision;
      const twice = await Promise.allSettled([
        s.put("batch", "b-1", enc("x"), current),
        s.put("batch", "b-1", enc("y"), current),
        s.put("batch", "b-2", enc("z"), (await s.get("batch", "b-2"))!.revision),
      ]);
      expect(twice.slice(0, 2).filter((r) => r.status === "fulfilled")).toHaveLength(1);
      expect(twice[2]?.status).toBe("fulfilled");
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
