/**
 * Combines a path's rounds: this machine is shared, and load from elsewhere only ever slows a
 * round down, so the best round is the closest to what the path costs. Throughput (and its CPU)
 * comes from the fastest round, latency from the round with the lowest p50; every round is kept.
 */
import type { RoundTripResult } from "./round-trip.js";

export interface RoundSummary {
  status: RoundTripResult["status"];
  reason?: string;
  tasksPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
}

export type CombinedResult = RoundTripResult & { rounds: RoundSummary[] };

export function bestOf(rounds: readonly RoundTripResult[]): CombinedResult {
  const summaries = rounds.map((r) => {
    const s: RoundSummary = { status: r.status };
    if (r.reason !== undefined) s.reason = r.reason;
    if (r.tasksPerSec !== undefined) s.tasksPerSec = r.tasksPerSec;
    if (r.p50Ms !== undefined) s.p50Ms = r.p50Ms;
    if (r.p99Ms !== undefined) s.p99Ms = r.p99Ms;
    return s;
  });
  const ok = rounds.filter((r) => r.status === "ok");
  if (ok.length === 0) return { ...(rounds[0] as RoundTripResult), rounds: summaries };
  const fastest = ok.reduce((a, b) => ((b.tasksPerSec ?? 0) > (a.tasksPerSec ?? 0) ? b : a));
  const quickest = ok.reduce((a, b) => ((b.p50Ms ?? Infinity) < (a.p50Ms ?? Infinity) ? b : a));
  const combined: CombinedResult = { ...fastest, rounds: summaries };
  if (quickest.p50Ms !== undefined) combined.p50Ms = quickest.p50Ms;
  if (quickest.p99Ms !== undefined) combined.p99Ms = quickest.p99Ms;
  return combined;
}
