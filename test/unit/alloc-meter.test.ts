/**
 * The bench's allocation meter (bench/harness/alloc-meter.ts): what it reports for a known amount
 * of garbage, collected by several GCs between two readings.
 */
import { describe, expect, it } from "vitest";
import { AllocMeter } from "../../bench/harness/alloc-meter.js";

describe("AllocMeter", () => {
  it("counts garbage freed by the GCs between two readings, plus what is still held", () => {
    const meter = new AllocMeter();
    const before = meter.read();
    // 4,000 arrays of 1,000 doubles: about 8 KB each, 32 MB in all, most of it freed as it goes.
    let keep: number[] = [];
    for (let i = 0; i < 4000; i++) {
      const a = new Array<number>(1000).fill(i + 0.5);
      if (i % 1000 === 0) keep = a;
    }
    const counted = meter.read() - before;
    meter.stop();
    expect(keep.length).toBe(1000);
    expect(counted).toBeGreaterThan(30 * 1024 * 1024);
    expect(counted).toBeLessThan(40 * 1024 * 1024);
  });
});
