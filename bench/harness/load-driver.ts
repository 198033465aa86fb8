/**
 * Drives round trips through a client: a throughput phase (a fixed number of calls kept `inflight`
 * at once) and a latency phase (one call at a time). Both stop at their deadline, whatever the
 * transport does: a lost result ends the phase at the deadline and is reported, never awaited.
 */

export type Call = (x: number) => Promise<number>;

export interface PhaseResult {
  done: number;
  errors: number;
  elapsedMs: number;
  /** Set when the deadline ended the phase before every call completed. */
  timedOut: boolean;
  firstError?: string;
}

export interface LatencyResult extends PhaseResult {
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Every completed call's time, ascending. */
  samples: number[];
}

function deadlineAfter(ms: number): { promise: Promise<"deadline">; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<"deadline">((resolve) => {
    timer = setTimeout(() => resolve("deadline"), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** `count` calls with at most `inflight` outstanding; checks every result is `2x`. */
export async function runThroughput(
  call: Call,
  count: number,
  inflight: number,
  timeoutMs: number,
): Promise<PhaseResult> {
  const result: PhaseResult = { done: 0, errors: 0, elapsedMs: 0, timedOut: false };
  let next = 0;
  let stopped = false;
  const lane = async (): Promise<void> => {
    while (!stopped && next < count) {
      const x = next++;
      try {
        const y = await call(x);
        if (y !== x * 2) throw new Error(`wrong result ${y} for x=${x}`);
        result.done++;
      } catch (error) {
        result.errors++;
        result.firstError ??= error instanceof Error ? error.message : String(error);
        if (result.errors > 100) stopped = true;
      }
    }
  };
  const deadline = deadlineAfter(timeoutMs);
  const start = performance.now();
  const lanes = Promise.all(Array.from({ length: Math.min(inflight, count) }, lane));
  const outcome = await Promise.race([lanes, deadline.promise]);
  result.elapsedMs = performance.now() - start;
  deadline.cancel();
  stopped = true;
  result.timedOut = outcome === "deadline";
  return result;
}

/** `count` calls one after another, each timed; percentiles over the completed ones. */
export async function runLatency(call: Call, count: number, timeoutMs: number): Promise<LatencyResult> {
  const samples: number[] = [];
  const result: PhaseResult = { done: 0, errors: 0, elapsedMs: 0, timedOut: false };
  const deadline = deadlineAfter(timeoutMs);
  const start = performance.now();
  for (let x = 0; x < count; x++) {
    const t0 = performance.now();
    const outcome = await Promise.race([call(x).catch((e: unknown) => e as Error), deadline.promise]);
    if (outcome === "deadline") {
      result.timedOut = true;
      break;
    }
    if (outcome === x * 2) {
      samples.push(performance.now() - t0);
      result.done++;
    } else {
      result.errors++;
      result.firstError ??= outcome instanceof Error ? outcome.message : `wrong result ${String(outcome)}`;
      if (result.errors > 100) break;
    }
  }
  result.elapsedMs = performance.now() - start;
  deadline.cancel();
  samples.sort((a, b) => a - b);
  return {
    ...result,
    p50Ms: percentile(samples, 0.5),
    p99Ms: percentile(samples, 0.99),
    meanMs: samples.length === 0 ? Number.NaN : samples.reduce((a, b) => a + b, 0) / samples.length,
    samples,
  };
}

/** Nearest-rank percentile of sorted samples (NaN when empty). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}
