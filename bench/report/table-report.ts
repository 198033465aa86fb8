/** The report printed to stdout: Markdown tables, so it pastes into the README and the issue as is. */
import type { RoundTripResult } from "../harness/round-trip.js";
import type { BenchResults, CpuPerCall, TargetResult } from "./bench-results.js";
import { p50Ratio, pairedP50Ratio } from "./targets.js";

export type { BenchResults } from "./bench-results.js";

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
  const rule = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

const int = (n: number | undefined) => (n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
const ms = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? "–" : n.toFixed(n < 10 ? 2 : 1));
const ratio = (n: number | undefined) => (n === undefined ? "–" : `${n.toFixed(2)}×`);

function roundTripRows(results: BenchResults): string[][] {
  const byId = new Map(results.roundTrips.map((r) => [r.id, r]));
  const bull = byId.get("bullmq");
  return results.roundTrips.map((r: RoundTripResult) => {
    if (r.status !== "ok") {
      const reason = (r.reason ?? "").replace(/\s+/g, " ").slice(0, 90);
      return [r.label, `${r.status}: ${reason}`, "", "", "", "", "", "", "", ""];
    }
    const base = r.baseline ? byId.get(r.baseline) : undefined;
    const baseOk = base?.status === "ok" ? base : undefined;
    const bullOk = bull?.status === "ok" && r.id !== "bullmq" ? bull : undefined;
    const cpu = r.cpuMsPer1k;
    return [
      r.label,
      int(r.tasksPerSec),
      ms(r.p50Ms),
      ms(r.p99Ms),
      cpu ? `${ms(cpu.total)} (${ms(cpu.producer)}+${ms(cpu.workers)})` : "–",
      cpu?.broker === undefined ? "–" : ms(cpu.broker),
      baseOk?.tasksPerSec && r.tasksPerSec ? ratio(r.tasksPerSec / baseOk.tasksPerSec) : "–",
      ratio(p50Ratio(results, r.id)),
      cpuRatio(r, baseOk),
      bullOk?.tasksPerSec && r.tasksPerSec ? ratio(r.tasksPerSec / bullOk.tasksPerSec) : "–",
    ];
  });
}

/** CPU per task (clients + broker) relative to the raw baseline's: robust to load from elsewhere. */
function cpuRatio(r: RoundTripResult, base: RoundTripResult | undefined): string {
  const total = (x: RoundTripResult) =>
    x.cpuMsPer1k && x.cpuMsPer1k.broker !== undefined ? x.cpuMsPer1k.total + x.cpuMsPer1k.broker : undefined;
  const a = total(r);
  const b = base ? total(base) : undefined;
  return a !== undefined && b !== undefined && b > 0 ? ratio(a / b) : "–";
}

/** "producer+worker+broker" CPU µs per call. */
export function cpuPerCall(c: CpuPerCall | undefined): string {
  if (!c) return "–";
  const parts = [c.producer, c.worker, ...(c.broker === undefined ? [] : [c.broker])];
  return parts.map((n) => n.toFixed(0)).join("+");
}

/** Heap bytes allocated per round trip in producer and workers, and the share of their CPU in GC. */
function allocLines(results: BenchResults): string[] {
  const rows = results.roundTrips.filter((r) => r.status === "ok" && r.allocPerTask !== undefined);
  if (rows.length === 0) return [];
  const kb = (n: number) => `${(n / 1024).toFixed(2)} KB`;
  return [
    "",
    "Allocation per round trip (V8 heap bytes during the throughput phase, from every GC's heap before/after;",
    "buffer contents outside the heap not counted; the producer's includes the bench's load driver; in memory",
    "the producer column is the whole process):",
    table(
      ["path", "producer", "workers"],
      rows.map((r) => {
        const a = r.allocPerTask as NonNullable<RoundTripResult["allocPerTask"]>;
        return [r.label, kb(a.producer), r.workerProcesses === 0 ? "–" : kb(a.workers)];
      }),
    ),
  ];
}

/** The latency measured side by side with the baseline, which "vs raw p50" and the targets use. */
function pairedLines(results: BenchResults): string[] {
  const rows = results.pairedLatency ?? [];
  if (rows.length === 0) return [];
  const label = (id: string) => results.roundTrips.find((r) => r.id === id)?.label ?? id;
  return [
    "",
    "vs raw p50: latency measured side by side, both paths up at once, alternating blocks of one-at-a-time calls",
    `(${rows[0]?.blocks ?? 0} blocks of ${rows[0]?.callsPerBlock ?? 0} calls per path), so that load from elsewhere falls on both alike; CPU µs/call is producer+worker+broker:`,
    table(
      [
        "path",
        "p50 ms",
        "p99 ms",
        "CPU µs/call",
        "baseline",
        "baseline p50 ms",
        "baseline p99 ms",
        "baseline CPU µs/call",
        "p50 ratio",
      ],
      rows.map((p) =>
        p.status === "ok"
          ? [
              p.label,
              ms(p.p50Ms),
              ms(p.p99Ms),
              cpuPerCall(p.cpuUsPerCall),
              label(p.baseline),
              ms(p.baselineP50Ms),
              ms(p.baselineP99Ms),
              cpuPerCall(p.baselineCpuUsPerCall),
              ratio(pairedP50Ratio(p)),
            ]
          : [p.label, `failed: ${(p.reason ?? "").slice(0, 80)}`, "", "", label(p.baseline), "", "", "", ""],
      ),
    ),
  ];
}

export function targetLine(t: TargetResult): string {
  const value =
    t.value === undefined
      ? t.detail
      : `${t.unit === "×" ? t.value.toFixed(2) : Math.round(t.value).toLocaleString("en-US")}${t.unit === "×" ? "×" : ` ${t.unit}`}` +
        ` (target ${t.comparator} ${t.unit === "×" ? t.limit : t.limit.toLocaleString("en-US")}${t.unit === "×" ? "×" : ` ${t.unit}`}; ${t.detail})`;
  return `${t.status.padEnd(4)}  ${t.name.padEnd(52)} ${value}`;
}

export function formatReport(results: BenchResults): string {
  const c = results.config;
  const out: string[] = [];
  out.push(
    `fastagentic bench — ${results.date}, ${results.machine.cpus} × ${results.machine.cpuModel}, Node ${results.machine.node}, ` +
      `load average ${results.machine.loadAverageAtStart.toFixed(1)} at start` +
      (results.machine.loadAverageAtEnd === undefined
        ? ""
        : `, ${results.machine.loadAverageAtEnd.toFixed(1)} at end`) +
      `; fastagentic from ${results.machine.codeUnderTest}`,
    `round trip {x} → x*2, worker in another process (in memory: same process); throughput ${c.tasks.toLocaleString("en-US")} tasks, ` +
      `${c.inflight} in flight; latency ${c.latencyTasks.toLocaleString("en-US")} one at a time (after ${c.latencyWarmupTasks.toLocaleString("en-US")} to warm up); ` +
      `${c.concurrency} deliveries per worker process; best of ${c.rounds} interleaved round(s) per path (in memory: 3 measurements per round)`,
    "",
    table(
      [
        "path",
        "tasks/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/1k (producer+workers)",
        "broker CPU ms/1k",
        "vs raw thr",
        "vs raw p50",
        "vs raw CPU",
        "× BullMQ",
      ],
      roundTripRows(results),
    ),
    "",
    "vs raw CPU: CPU per task of producer + workers + broker, over the raw baseline's (the same work on this",
    "2-core machine, where producer, worker and broker share the cores: below 1 is cheaper than raw).",
    ...allocLines(results),
    ...pairedLines(results),
    "",
    "Targets (ratios taken in this run):",
    ...results.targets.map(targetLine),
  );
  if (results.scaling?.length) {
    const counts = [...new Set(results.scaling.flatMap((s) => s.rows.map((r) => r.workerProcesses)))];
    out.push(
      "",
      `Scaling (${c.scalingTasks.toLocaleString("en-US")} tasks, tasks/s by worker processes):`,
      table(
        ["path", ...counts.map((n) => `${n} worker${n > 1 ? "s" : ""}`)],
        results.scaling.map((s) => [
          s.label,
          ...counts.map((n) => {
            const row = s.rows.find((r) => r.workerProcesses === n);
            return row?.status === "ok"
              ? int(row.tasksPerSec)
              : `${row?.status ?? "–"}${row?.reason ? `: ${row.reason.slice(0, 60)}` : ""}`;
          }),
        ]),
      ),
    );
  }
  if (results.failover?.length) {
    out.push(
      "",
      "Failover (SIGKILL a worker holding tasks; time until they complete on the surviving worker):",
      table(
        ["path", "tasks held", "first done ms", "all done ms", "note"],
        results.failover.map((f) =>
          f.status === "ok"
            ? [f.label, String(f.tasks), int(f.firstDoneMs), int(f.allDoneMs), f.reason ?? ""]
            : [f.label, "–", "–", "–", `${f.status}: ${(f.reason ?? "").slice(0, 100)}`],
        ),
      ),
    );
  }
  const q = results.queuedMemory;
  if (q) {
    out.push(
      "",
      "error" in q
        ? `Memory per queued task: failed: ${q.error}`
        : `Memory per queued task (in memory, ${q.tasks.toLocaleString("en-US")} queued): ${int(q.heapBytesPerTask)} B heap + ` +
            `${int(q.arrayBufferBytesPerTask)} B buffers − ${int(q.payloadBytes)} B payload = ${int(q.netBytesPerTask)} B`,
    );
  }
  const x = results.xstate;
  if (x) {
    out.push(
      "error" in x
        ? `XState: failed: ${x.error}`
        : `XState 5 task machine: actor create+start+2 events+stop ${x.actorLifecycleUs.toFixed(1)} µs, pure transition() ` +
            `${x.pureTransitionUs.toFixed(1)} µs, compiled table lookup ${x.compiledLookupNs.toFixed(0)} ns; ` +
            `${int(x.heapBytesPerLiveActor)} B per live actor vs ${int(x.heapBytesPerSnapshot)} B per persisted snapshot`,
    );
  }
  if (results.durationSec !== undefined) out.push("", `(bench took ${results.durationSec.toFixed(0)} s)`);
  return out.join("\n");
}
