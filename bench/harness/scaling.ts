/** Throughput of fastagentic on NATS and RabbitMQ with 1, 2, 4… worker processes. */
import type { BenchConfig } from "../bench-config.js";
import type { PathSpec } from "../paths/bench-path.js";
import { pathById } from "../paths/path-registry.js";
import type { ScalingResult } from "../report/bench-results.js";
import { measurePath } from "./round-trip.js";

export const SCALING_PATHS = ["fa-nats", "fa-amqp"] as const;

export async function measureScaling(
  config: BenchConfig,
  specFor: (name: string) => PathSpec,
  log: (line: string) => void,
): Promise<ScalingResult[]> {
  const results: ScalingResult[] = [];
  for (const id of SCALING_PATHS) {
    const path = pathById(id);
    const result: ScalingResult = { id, label: path.label, rows: [] };
    for (const n of config.scalingWorkers) {
      log(`scaling: ${path.label}, ${n} worker process(es) …`);
      const r = await measurePath(path, specFor(`${id}-s${n}`), config, {
        workerProcesses: n,
        tasks: config.scalingTasks,
        latency: false,
      });
      result.rows.push({
        workerProcesses: n,
        status: r.status,
        ...(r.reason === undefined ? {} : { reason: r.reason }),
        ...(r.tasksPerSec === undefined ? {} : { tasksPerSec: r.tasksPerSec }),
      });
      log(
        `  ${r.status}${r.tasksPerSec ? `: ${Math.round(r.tasksPerSec)} tasks/s` : ""}${r.reason ? ` (${r.reason})` : ""}`,
      );
      if (r.status === "unavailable") break;
    }
    results.push(result);
  }
  return results;
}
