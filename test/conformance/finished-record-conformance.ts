/**
 * The record of finished tasks (transports/finished-record.ts), one suite for every
 * implementation: nothing known, an outcome recorded once (a second write is refused and says
 * so), the outcome's bytes back, retries remembered and never hiding an outcome, another
 * process's record seeing the same entries.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { FinishedRecord } from "../../transports/finished-record.js";

export interface FinishedRecordSuite {
  name: string;
  available(): Promise<boolean>;
  create(): Promise<FinishedRecord>;
  /** Another client of the same record (another process's transport). */
  peer(record: FinishedRecord): Promise<FinishedRecord>;
  cleanup?(record: FinishedRecord): Promise<void>;
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? new TextDecoder().decode(b) : null);

export function describeFinishedRecordConformance(suite: FinishedRecordSuite): void {
  describe(`finished-task record conformance: ${suite.name}`, () => {
    let ok = false;
    const made: FinishedRecord[] = [];
    beforeAll(async () => {
      ok = await suite.available();
    });
    afterEach(async () => {
      for (const r of made.splice(0)) await suite.cleanup?.(r);
    });
    async function fresh(): Promise<FinishedRecord> {
      const r = await suite.create();
      made.push(r);
      return r;
    }

    it("knows nothing of a task never recorded", async ({ skip }) => {
      if (!ok) skip();
      const r = await fresh();
      expect(await r.lookup("task-never")).toBeNull();
      expect(r.ttlMs).toBeGreaterThan(0);
    });

    it("records an outcome once: the first write wins, a second one is refused and says so", async ({
      skip,
    }) => {
      if (!ok) skip();
      const r = await fresh();
      expect(await r.recordOutcome("task-1", bytes('{"kind":"completed","n":1}'))).toBe(true);
      expect(await r.recordOutcome("task-1", bytes('{"kind":"completed","n":2}'))).toBe(false);
      const known = await r.lookup("task-1");
      expect(text(known?.outcome)).toBe('{"kind":"completed","n":1}');
      expect(await r.lookup("task-2")).toBeNull();
    });

    it("forgets a task (a dead letter retried under its id): it is unknown again and can be recorded anew", async ({
      skip,
    }) => {
      if (!ok) skip();
      const r = await fresh();
      expect(await r.recordOutcome("task-f", bytes("failed"))).toBe(true);
      await r.recordRetry("task-f", 2);
      await r.recordOutcome("task-other", bytes("kept"));
      await r.forget("task-f");
      expect(await r.lookup("task-f")).toBeNull();
      expect(text((await r.lookup("task-other"))?.outcome)).toBe("kept");
      expect(await r.recordOutcome("task-f", bytes("failed again"))).toBe(true);
      expect(text((await r.lookup("task-f"))?.outcome)).toBe("failed again");
    });

    it("remembers the last retried attempt, and a retry never hides an outcome", async ({ skip }) => {
      if (!ok) skip();
      const r = await fresh();
      await r.recordRetry("task-r", 1);
      expect(await r.lookup("task-r")).toEqual({ outcome: null, retriedAttempt: 1 });
      await r.recordRetry("task-r", 2);
      expect((await r.lookup("task-r"))?.retriedAttempt).toBe(2);
      expect(await r.recordOutcome("task-r", bytes("done"))).toBe(true);
      await r.recordRetry("task-r", 3); // a late retry report of a run that lost
      expect(text((await r.lookup("task-r"))?.outcome)).toBe("done");
    });

    it("keeps ids that are not key-safe apart", async ({ skip }) => {
      if (!ok) skip();
      const r = await fresh();
      expect(await r.recordOutcome("order/42 ü", bytes("a"))).toBe(true);
      expect(await r.recordOutcome("order.42", bytes("b"))).toBe(true);
      expect(text((await r.lookup("order/42 ü"))?.outcome)).toBe("a");
      expect(text((await r.lookup("order.42"))?.outcome)).toBe("b");
    });

    it("is shared: another client sees an outcome recorded here and cannot record a second", async ({
      skip,
    }) => {
      if (!ok) skip();
      const r = await fresh();
      const other = await suite.peer(r);
      expect(await r.recordOutcome("task-shared", bytes("first"))).toBe(true);
      expect(text((await other.lookup("task-shared"))?.outcome)).toBe("first");
      expect(await other.recordOutcome("task-shared", bytes("second"))).toBe(false);
    });
  });
}
