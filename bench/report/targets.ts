/** The targets of issue 7, each a ratio or a figure taken in the same run, as PASS / MISS / N/A. */
import type { RoundTripResult } from "../harness/round-trip.js";
import type { BenchResults, PairedLatencyResult, TargetResult } from "./bench-results.js";

function ok(results: BenchResults, id: string): RoundTripResult | undefined {
  const r = results.roundTrips.find((x) => x.id === id);
  return r?.status === "ok" ? r : undefined;
}

export function target(
  name: string,
  value: number | undefined,
  comparator: ">=" | "<=",
  limit: number,
  unit: string,
  missing: string,
): TargetResult {
  if (value === undefined || !Number.isFinite(value)) {
    return { name, status: "N/A", limit, comparator, unit, detail: missing };
  }
  const pass = comparator === ">=" ? value >= limit : value <= limit;
  // How far from the limit, as a share of it: the room left, or how much is missing / too much.
  const share = Math.abs(value / limit - 1);
  const word = pass ? "margin" : comparator === ">=" ? "short by" : "over by";
  const detailText = `${word} ${(share * 100).toFixed(0)}%`;
  return {
    name,
    status: pass ? "PASS" : "MISS",
    value,
    limit,
    comparator,
    unit,
    detail: detailText,
  };
}

function why(results: BenchResults, ...ids: string[]): string {
  const missing = ids
    .map((id) => results.roundTrips.find((r) => r.id === id))
    .filter((r) => r?.status !== "ok")
    .map((r) => (r ? `${r.id} ${r.status}` : "not run"));
  return missing.length > 0 ? missing.join(", ") : "not measured";
}

/** The p50 over its baseline's, of one side-by-side measurement. */
export function pairedP50Ratio(p: PairedLatencyResult): number | undefined {
  return p.status === "ok" && p.p50Ms && p.baselineP50Ms ? p.p50Ms / p.baselineP50Ms : undefined;
}

/**
 * A path's p50 over its raw baseline's: measured side by side (alternating blocks) when there is
 * such a measurement, else from the two paths' round trips.
 */
export function p50Ratio(results: BenchResults, id: string): number | undefined {
  const paired = results.pairedLatency?.find((x) => x.id === id);
  const fromPaired = paired === undefined ? undefined : pairedP50Ratio(paired);
  if (fromPaired !== undefined) return fromPaired;
  const fa = ok(results, id);
  const base = fa?.baseline === undefined ? undefined : ok(results, fa.baseline);
  return fa?.p50Ms && base?.p50Ms ? fa.p50Ms / base.p50Ms : undefined;
}

export function evaluateTargets(results: BenchResults): TargetResult[] {
  const targets: TargetResult[] = [];
  const bull = ok(results, "bullmq");
  for (const [id, raw, name] of [
    ["fa-nats", "raw-jetstream", "NATS"],
    ["fa-amqp", "raw-amqp", "RabbitMQ"],
  ] as const) {
    const fa = ok(results, id);
    const base = ok(results, raw);
    const thr = fa?.tasksPerSec && base?.tasksPerSec ? fa.tasksPerSec / base.tasksPerSec : undefined;
    const p50 = p50Ratio(results, id);
    const vsBull = fa?.tasksPerSec && bull?.tasksPerSec ? fa.tasksPerSec / bull.tasksPerSec : undefined;
    targets.push(target(`${name} throughput ≥ 0.85× raw`, thr, ">=", 0.85, "×", why(results, id, raw)));
    targets.push(target(`${name} p50 latency ≤ 1.2× raw`, p50, "<=", 1.2, "×", why(results, id, raw)));
    targets.push(
      target(`${name} throughput ≥ 1.5× BullMQ`, vsBull, ">=", 1.5, "×", why(results, id, "bullmq")),
    );
    if (id === "fa-amqp") {
      targets.push(target(`${name} p50 latency ≤ 1.1× raw`, p50, "<=", 1.1, "×", why(results, id, raw)));
    }
    for (const side of ["producer", "workers"] as const) {
      targets.push(
        target(
          `${name} ≤ 3 KB allocated per round trip (${side === "producer" ? "producer" : "worker"})`,
          fa?.allocPerTask?.[side],
          "<=",
          3072,
          "B",
          why(results, id),
        ),
      );
    }
  }
  const mem = ok(results, "fa-memory");
  for (const limit of [50_000, 150_000]) {
    targets.push(
      target(
        `in-memory ≥ ${limit.toLocaleString("en-US")} tasks/s`,
        mem?.tasksPerSec,
        ">=",
        limit,
        "tasks/s",
        why(results, "fa-memory"),
      ),
    );
  }
  const q = results.queuedMemory;
  const net = q && "netBytesPerTask" in q ? q.netBytesPerTask : undefined;
  const qMissing = q && "error" in q ? q.error : "not measured";
  targets.push(
    target("in-memory ≤ 1 KB heap per queued task beyond payload", net, "<=", 1024, "B", qMissing),
  );
  const dash = results.dashboard;
  for (const [label, ratio] of [
    ["mounted", dash?.mountedRatio],
    ["a page connected", dash?.pageRatio],
  ] as const) {
    targets.push(
      target(
        `dashboard (${label}) costs ≤ 5% of in-memory throughput`,
        ratio,
        ">=",
        0.95,
        "×",
        "not measured",
      ),
    );
  }
  return targets;
}
