/** Rendezvous hashing: every holder computes the same owner; a joining holder takes only its share. */
import { describe, expect, it } from "vitest";
import { ownerOf } from "../../../src/entities/entity-membership.js";

describe("ownerOf", () => {
  const partitions = Array.from({ length: 64 }, (_, p) => p);

  it("gives every partition one owner among the holders, the same whatever their order", () => {
    const holders = ["w-a", "w-b", "w-c"];
    for (const p of partitions)
      expect(ownerOf("order", p, holders)).toBe(ownerOf("order", p, [...holders].reverse()));
    const counts = new Map<string, number>();
    for (const p of partitions)
      counts.set(ownerOf("order", p, holders)!, (counts.get(ownerOf("order", p, holders)!) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(holders);
    for (const n of counts.values()) expect(n).toBeGreaterThan(8); // roughly a third each
    expect(ownerOf("order", 0, [])).toBeUndefined();
  });

  it("moves only the joining holder's share when one joins, and only the leaver's when one leaves", () => {
    const before = partitions.map((p) => ownerOf("order", p, ["w-a", "w-b"]));
    const after = partitions.map((p) => ownerOf("order", p, ["w-a", "w-b", "w-c"]));
    for (const [p, owner] of after.entries()) if (owner !== "w-c") expect(owner).toBe(before[p]);
    expect(after.filter((o) => o === "w-c").length).toBeGreaterThan(0);
  });
});
