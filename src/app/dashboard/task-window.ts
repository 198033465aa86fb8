/**
 * Throughput and latency over the last minutes, aggregated on the server: one bucket per second
 * in a fixed ring (no timer, no allocation per task), each with counts by outcome and a small
 * log-scale latency histogram, so p50/p95 of any second cost nothing to keep. What the page gets
 * is a point per second, never one message per task.
 */
import type { Task } from "../../types.js";

/** Latency histogram bounds (ms): 1, 2, 4 … about 9 minutes; the last bucket takes the rest. */
const BOUNDS: readonly number[] = Array.from({ length: 20 }, (_, i) => 2 ** i);
const BINS = BOUNDS.length + 1;

/** One second: [epoch second, completed, failed (incl. timeout), cancelled, p50 ms, p95 ms]. */
export type WindowPoint = [number, number, number, number, number | null, number | null];

export class TaskWindow {
  private readonly seconds: Float64Array;
  private readonly completed: Uint32Array;
  private readonly failed: Uint32Array;
  private readonly cancelled: Uint32Array;
  private readonly histogram: Uint32Array;

  constructor(
    /** Seconds kept. */
    readonly size: number,
    private readonly now: () => number,
  ) {
    this.seconds = new Float64Array(size).fill(-1);
    this.completed = new Uint32Array(size);
    this.failed = new Uint32Array(size);
    this.cancelled = new Uint32Array(size);
    this.histogram = new Uint32Array(size * BINS);
  }

  /** Counts a finished task in the second it finished (O(1)). */
  add(task: Task): void {
    const at = task.completedAt ?? this.now();
    const i = this.slot(Math.floor(at / 1000));
    const counts =
      task.status === "completed"
        ? this.completed
        : task.status === "cancelled"
          ? this.cancelled
          : this.failed;
    counts[i] = (counts[i] as number) + 1;
    const latency = at - task.createdAt;
    // A task without a usable creation time (not known to this process) counts, but has no latency.
    if (task.status !== "cancelled" && Number.isFinite(latency)) {
      const bin = i * BINS + binOf(Math.max(0, latency));
      this.histogram[bin] = (this.histogram[bin] as number) + 1;
    }
  }

  /** The seconds from `fromSecond` (inclusive) to the last whole second, oldest first. */
  points(fromSecond: number): WindowPoint[] {
    const last = Math.floor(this.now() / 1000) - 1;
    const first = Math.max(fromSecond, last - this.size + 1);
    const out: WindowPoint[] = [];
    for (let s = first; s <= last; s++) {
      const i = s % this.size;
      if (this.seconds[i] !== s) {
        out.push([s, 0, 0, 0, null, null]);
        continue;
      }
      out.push([
        s,
        this.completed[i] as number,
        this.failed[i] as number,
        this.cancelled[i] as number,
        this.quantile(i, 0.5),
        this.quantile(i, 0.95),
      ]);
    }
    return out;
  }

  /** The index of second `s`, cleared when it held an older second. */
  private slot(s: number): number {
    const i = ((s % this.size) + this.size) % this.size;
    if (this.seconds[i] !== s) {
      this.seconds[i] = s;
      this.completed[i] = 0;
      this.failed[i] = 0;
      this.cancelled[i] = 0;
      this.histogram.fill(0, i * BINS, (i + 1) * BINS);
    }
    return i;
  }

  /** The upper bound (ms) of the bin holding quantile q of second slot i, or null without samples. */
  private quantile(i: number, q: number): number | null {
    let total = 0;
    for (let b = 0; b < BINS; b++) total += this.histogram[i * BINS + b] as number;
    if (total === 0) return null;
    const rank = Math.ceil(q * total);
    let seen = 0;
    for (let b = 0; b < BINS; b++) {
      seen += this.histogram[i * BINS + b] as number;
      if (seen >= rank)
        return b < BOUNDS.length ? (BOUNDS[b] as number) : 2 * (BOUNDS[BOUNDS.length - 1] as number);
    }
    return null;
  }
}

/** The first bin whose bound (2^b ms) holds `ms`: ⌈log2 ms⌉, in O(1). */
function binOf(ms: number): number {
  const whole = Math.ceil(ms);
  if (whole <= 1) return 0;
  if (whole > (BOUNDS[BOUNDS.length - 1] as number)) return BOUNDS.length;
  return 32 - Math.clz32(whole - 1);
}
