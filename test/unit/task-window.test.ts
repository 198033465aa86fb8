/** The dashboard's per-second window: counts by outcome, latency quantiles, ring reuse (injected clock). */
import { describe, expect, it } from "vitest";
import { TaskWindow } from "../../src/app/dashboard/task-window.js";
import type { Task } from "../../src/types.js";

const task = (status: string, createdAt: number, completedAt: number) =>
  ({ id: "t", type: "x", status, createdAt, completedAt }) as unknown as Task;

describe("TaskWindow", () => {
  it("counts each second's outcomes and its p50/p95 latency (histogram bounds, ms)", () => {
    let now = 10_000;
    const w = new TaskWindow(60, () => now);
    for (let i = 0; i < 19; i++) w.add(task("completed", 10_000, 10_003)); // 3 ms → bin ≤ 4
    w.add(task("failed", 9_000, 10_900)); // 1900 ms → bin ≤ 2048
    w.add(task("cancelled", 0, 10_500)); // counted, no latency
    now = 12_000;
    expect(w.points(10)).toEqual([
      [10, 19, 1, 1, 4, 4],
      [11, 0, 0, 0, null, null],
    ]);
    w.add(task("timeout", 10_000, 11_999));
    expect(w.points(11)).toEqual([[11, 0, 1, 0, 2048, 2048]]);
  });

  it("counts a task without a creation time, without making up its latency", () => {
    let now = 5_000;
    const w = new TaskWindow(10, () => now);
    w.add({ status: "failed", completedAt: 5_100 } as unknown as Task);
    w.add(task("completed", 5_000, 5_001));
    now = 6_000;
    expect(w.points(5)).toEqual([[5, 1, 1, 0, 1, 1]]);
  });

  it("reuses a slot for a later second, and skips seconds with nothing", () => {
    let now = 0;
    const w = new TaskWindow(4, () => now);
    w.add(task("completed", 0, 1_000));
    w.add(task("completed", 4_000, 5_000)); // the same slot as second 1, 4 seconds later
    now = 6_000;
    expect(w.points(0)).toEqual([
      [2, 0, 0, 0, null, null],
      [3, 0, 0, 0, null, null],
      [4, 0, 0, 0, null, null],
      [5, 1, 0, 0, 1024, 1024],
    ]);
  });
});
