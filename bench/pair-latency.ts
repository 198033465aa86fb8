/**
 * Two paths' one-at-a-time latency side by side, repeated: the method of the bench's p50 ratios
 * (bench/harness/paired-latency.ts) for any two paths, to split a gap or check the method.
 *   npm run build && TSX_TSCONFIG_PATH=bench/tsconfig.json npx tsx bench/pair-latency.ts \
 *     --a=fa-amqp --b=fa-amqp-transport [--reps=3] [--latency-tasks=4000] [other bench flags]
 * Examples: fa-amqp-transport vs raw-amqp (the transport and its wire shapes), fa-amqp vs
 * fa-amqp-transport (the Coordinator and the Worker), raw-amqp-twin vs raw-amqp (A/A: the noise).
 * Prints, per repetition, both p50s, their ratio and the CPU µs per call (producer+worker+broker).
 */
import { parseToolArgs, pathSpec, UsageError } from "./bench-config.js";
import { measurePairedLatency } from "./harness/paired-latency.js";
import { runTool } from "./harness/worker-children.js";
import { pathById } from "./paths/path-registry.js";
import { cpuPerCall } from "./report/table-report.js";

async function main(): Promise<void> {
  const { own, config } = parseToolArgs(process.argv.slice(2), ["a", "b", "reps"], ["--latency-tasks=4000"]);
  const a = pathById(own.get("a") ?? "fa-amqp");
  const b = pathById(own.get("b") ?? a.baseline ?? "raw-amqp");
  const reps = Number(own.get("reps") ?? 3);
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new UsageError("--reps takes 1..20.");
  const runId = Date.now().toString(36);
  console.log(`${a.id} vs ${b.id}: ${config.latencyTasks} calls each per repetition, in blocks of 100`);
  for (let rep = 1; rep <= reps; rep++) {
    const r = await measurePairedLatency(a, b, (name) => pathSpec(config, `${runId}-${rep}`, name), config);
    if (r.status !== "ok" || r.p50Ms === undefined || r.baselineP50Ms === undefined) {
      console.log(`${rep}: failed: ${r.reason ?? "no samples"}`);
      process.exitCode = 1;
      continue;
    }
    console.log(
      `${rep}: p50 ${r.p50Ms.toFixed(3)} vs ${r.baselineP50Ms.toFixed(3)} ms = ${(r.p50Ms / r.baselineP50Ms).toFixed(3)}×` +
        `; CPU µs/call ${cpuPerCall(r.cpuUsPerCall)} vs ${cpuPerCall(r.baselineCpuUsPerCall)}`,
    );
  }
}

runTool(main);
