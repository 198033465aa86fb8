/**
 * `npm run demo`: the seed's quick start, then the same coordinator under a real load — thousands of
 * tasks of several types and priorities, some failing and retried, workers auto-scaling — with a
 * progress bar and a summary. Runs on the in-memory transport; set FASTAGENTIC_TRANSPORT
 * (e.g. nats://127.0.0.1:4222) to run it on a broker instead.
 */
import { SingleBar } from "cli-progress";
import Table from "cli-table3";
import {
  Coordinator,
  type TaskContext,
  TaskPriority,
  type TaskResult,
  transportFromUrl,
  UnrecoverableError,
} from "fastagentic";

const TOTAL = Number(process.env["DEMO_TASKS"] ?? 10_000);
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

const coordinator = new Coordinator({
  transport: transportFromUrl(process.env["FASTAGENTIC_TRANSPORT"] ?? "memory://", { namespace: "demo" }),
  config: {
    minWorkers: 2,
    maxWorkers: 10,
    autoScale: true,
    scaleUpThreshold: 10,
    scaleDownThreshold: 2,
    autoScaleIntervalMs: 250,
    scaleDownDelayMs: 500,
    healthCheckIntervalMs: 1000,
    workerTimeoutMs: 5000,
    retryBackoff: { initialMs: 20, multiplier: 2, maxMs: 200 },
  },
  workerConfig: { maxConcurrentTasks: 8, heartbeatIntervalMs: 500 },
});

// The seed's handlers, plus a few that show retries and failures.
coordinator.handler("process_document", async (data: { page_count: number }, ctx: TaskContext) => {
  await sleep(10 + (data.page_count % 20), ctx.signal);
  return { processed: true, pages: data.page_count };
});
coordinator.handler("generate_summary", async (data: { text: string }, ctx: TaskContext) => {
  await sleep(15, ctx.signal);
  return { summary: data.text.slice(0, 20) };
});
coordinator.handler("call_flaky_api", async (data: { n: number }, ctx: TaskContext) => {
  await sleep(10, ctx.signal);
  // Fails its first attempt one time in four, its second one time in eight, its third and fourth
  // one time in forty: retries recover all but those.
  const k = Math.floor(data.n / 4);
  if (ctx.attempt === 1 && k % 4 === 0) throw new Error("upstream 503");
  if (ctx.attempt === 2 && k % 8 === 0) throw new Error("upstream 503 again");
  if (ctx.attempt >= 3 && k % 40 === 0) throw new Error("upstream still down");
  return { ok: true, attempt: ctx.attempt };
});
coordinator.handler("validate_order", async (data: { total: number }) => {
  if (data.total < 0) throw new UnrecoverableError(`negative total ${data.total}`);
  return { valid: true };
});

await coordinator.start();

// ---- 1. The seed's quick start, as written there --------------------------------------------
console.log("Quick start (the seed's example):");
const result = await coordinator.submit("process_document", { document_id: "doc-123", page_count: 10 });
console.log("  submit('process_document')        →", JSON.stringify(result));
const task = await coordinator.submitAsync(
  "generate_summary",
  { text: "..." },
  { priority: TaskPriority.HIGH },
);
const summary = await coordinator.waitFor(task.id);
console.log(`  submitAsync + waitFor(${task.id}) → ${summary.status} ${JSON.stringify(summary.result)}\n`);

// ---- 2. Under load -----------------------------------------------------------------------------
// The counters so far (the quick start's two tasks): the summary counts the load's tasks only.
const before = coordinator.getStats();
const types = ["process_document", "generate_summary", "call_flaky_api", "validate_order"] as const;
const priorities = [TaskPriority.LOW, TaskPriority.NORMAL, TaskPriority.HIGH, TaskPriority.CRITICAL];
const priorityName = new Map<number, string>(Object.entries(TaskPriority).map(([k, v]) => [v, k]));
interface Row {
  type: string;
  priority: number;
  submittedAt: number;
  result?: TaskResult;
  latencyMs?: number;
}
const rows: Row[] = [];
let peakWorkers = coordinator.getStats().workers.workerCount;
const scaling: string[] = [];
coordinator.on("scaled", ({ from, to }) => scaling.push(`${from}→${to}`));

const bar = new SingleBar({
  format:
    " {bar} {percentage}% | {value}/{total} tasks | workers {workers} | queued {queued} | {rate} tasks/s",
  barCompleteChar: "█",
  barIncompleteChar: "░",
  hideCursor: true,
  noTTYOutput: true,
  notTTYSchedule: 2000,
});
console.log(`Running ${TOTAL} tasks of ${types.length} types and 4 priorities, in three waves:`);
const started = Date.now();
let done = 0;
bar.start(TOTAL, 0, { workers: peakWorkers, queued: 0, rate: 0 });
const ticker = setInterval(() => {
  const s = coordinator.getStats();
  peakWorkers = Math.max(peakWorkers, s.workers.workerCount);
  const rate = Math.round(done / Math.max(0.001, (Date.now() - started) / 1000));
  bar.update(done, { workers: s.workers.workerCount, queued: s.queue.queueSize, rate });
}, 100);

const waits: Promise<void>[] = [];
for (const wave of [0.5, 0.2, 0.3]) {
  if (rows.length > 0) await sleep(1500); // let the queue drain between waves, so scaling shows both ways
  const n = Math.round(TOTAL * wave);
  for (let i = 0; i < n && rows.length < TOTAL; i++) {
    const k = rows.length;
    const type = types[k % types.length] as (typeof types)[number];
    const priority = priorities[Math.floor(k / types.length) % priorities.length] as TaskPriority;
    const data =
      type === "process_document"
        ? { document_id: `doc-${k}`, page_count: k % 50 }
        : type === "generate_summary"
          ? { text: `document number ${k} says hello` }
          : type === "call_flaky_api"
            ? { n: k }
            : { total: k % 97 === 0 ? -1 : k };
    const row: Row = { type, priority, submittedAt: Date.now() };
    rows.push(row);
    const t = await coordinator.submitAsync(type, data, {
      priority,
      retries: type === "call_flaky_api" ? 3 : 0,
    });
    waits.push(
      coordinator.waitFor(t.id).then((r) => {
        row.result = r;
        row.latencyMs = Date.now() - row.submittedAt;
        done++;
      }),
    );
  }
}
await Promise.all(waits);
clearInterval(ticker);
const elapsed = (Date.now() - started) / 1000;
bar.update(done, {
  workers: coordinator.getStats().workers.workerCount,
  queued: 0,
  rate: Math.round(done / elapsed),
});
bar.stop();
await sleep(2000); // the scale-down after the load
const stats = coordinator.getStats();

// ---- 3. Summary --------------------------------------------------------------------------------
const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0
    ? 0
    : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0);
};
const style = process.stdout.isTTY ? {} : { style: { head: [], border: [] } }; // no colour codes in logs
const byType = new Table({
  head: ["task type", "tasks", "completed", "failed", "p50 ms", "p95 ms"],
  ...style,
});
for (const type of types) {
  const mine = rows.filter((r) => r.type === type);
  const lat = mine.map((r) => r.latencyMs ?? 0);
  byType.push([
    type,
    mine.length,
    mine.filter((r) => r.result?.status === "completed").length,
    mine.filter((r) => r.result?.status === "failed").length,
    pct(lat, 50),
    pct(lat, 95),
  ]);
}
const byPriority = new Table({ head: ["priority", "tasks", "p50 ms", "p95 ms"], ...style });
for (const p of [...priorities].reverse()) {
  const lat = rows.filter((r) => r.priority === p).map((r) => r.latencyMs ?? 0);
  byPriority.push([`${priorityName.get(p)} (${p})`, lat.length, pct(lat, 50), pct(lat, 95)]);
}
const totals = new Table(style);
const load = (key: "completed" | "failed" | "cancelled" | "timeout" | "retried" | "duplicates") =>
  stats[key] - before[key];
const outcomes = load("completed") + load("failed") + load("cancelled") + load("timeout");
totals.push(
  { "tasks run": `${done} in ${elapsed.toFixed(1)} s (${Math.round(done / elapsed)} tasks/s)` },
  {
    "completed / failed": `${load("completed")} / ${load("failed")} of ${TOTAL} (failures: unrecoverable bad orders, exhausted retries)`,
  },
  { "attempts retried": String(load("retried")) },
  { "lost / duplicated": `${TOTAL - outcomes} / ${load("duplicates")}` },
  { workers: `min 2, peak ${peakWorkers}, now ${stats.workers.workerCount} (max 10)` },
  { "scaling events": scaling.join(", ") || "none" },
);
console.log("\nBy task type:");
console.log(byType.toString());
console.log("By priority (submit to result):");
console.log(byPriority.toString());
console.log("Totals:");
console.log(totals.toString());

await coordinator.stop({ graceful: true });
