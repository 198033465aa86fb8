import { describe, expect, it } from "vitest";
import { LocalFinishedRecord } from "../../transports/finished-record.js";
import { describeFinishedRecordConformance } from "./finished-record-conformance.js";

describeFinishedRecordConformance({
  name: "in-process (LocalFinishedRecord)",
  available: async () => true,
  create: async () => new LocalFinishedRecord(60_000),
  // One process: its other clients are the same object.
  peer: async (record) => record,
});

describe("LocalFinishedRecord bounds", () => {
  const bytes = new Uint8Array([1]);

  it("forgets an id once its TTL has passed (simulated clock)", async () => {
    let now = 1000;
    const r = new LocalFinishedRecord(5000, 100, () => now);
    await r.recordOutcome("t", bytes);
    now += 4999;
    expect((await r.lookup("t"))?.outcome).toEqual(bytes);
    now += 1;
    expect(await r.lookup("t")).toBeNull();
    expect(await r.recordOutcome("t", bytes)).toBe(true); // forgotten: recorded anew
  });

  it("keeps at most maxEntries ids, forgetting the oldest first", async () => {
    const r = new LocalFinishedRecord(60_000, 3, () => 0);
    for (const id of ["a", "b", "c", "d"]) await r.recordOutcome(id, bytes);
    expect(r.size).toBe(3);
    expect(await r.lookup("a")).toBeNull();
    expect(await r.lookup("d")).not.toBeNull();
  });
});
