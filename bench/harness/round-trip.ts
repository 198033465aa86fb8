/**
 * Measures one path: probe, producer, worker processes, warm-up, throughput (with the CPU of the
 * producer, the workers and the broker), latency. A path that cannot run is reported, not thrown.
 */
import type { BenchConfig } from "../bench-config.js";
import { type BenchPath, type PathSpec, within } from "../paths/bench-path.js";
import { AllocMeter } from "./alloc-meter.js";
import { brokerCpuMs } from "./broker-cpu.js";
import { runLatency, runThroughput } from "./load-driver.js";
import {
  type CpuSample,
  startWorkers,
  stopWorkers,
  type WorkerChild,
  workersAlloc,
} from "./worker-children.js";

export interface RoundTripResult {
  id: string;
  label: string;
  kind: BenchPath["kind"];
  baseline?: string;
  status: "ok" | "unavailable" | "failed";
  reason?: string;
  workerProcesses: number;
  tasks?: number;
  tasksPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  /**
   * CPU ms per 1,000 round trips during the throughput phase: producer and worker processes
   * (process.cpuUsage), and the broker's processes (from /proc, less its idle rate).
   */
  cpuMsPer1k?: { producer: number; workers: number; total: number; broker?: number };
  /**
   * Bytes allocated on the V8 heap per round trip during the throughput phase, in the producer
   * and in the worker processes (harness/alloc-meter.ts). In process (in memory) the producer's
   * figure includes the worker's.
   */
  allocPerTask?: { producer: number; workers: number };
}

export interface RoundTripOptions {
  workerProcesses: number;
  tasks: number;
  latency: boolean;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

export async function measurePath(
  path: BenchPath,
  spec: PathSpec,
  config: BenchConfig,
  options: RoundTripOptions,
): Promise<RoundTripResult> {
  const result: RoundTripResult = {
    id: path.id,
    label: path.label,
    kind: path.kind,
    status: "ok",
    workerProcesses: path.inProcess ? 0 : options.workerProcesses,
  };
  if (path.baseline !== undefined) result.baseline = path.baseline;
  try {
    await within(path.probe(spec), 10_000, "probe");
  } catch (error) {
    return { ...result, status: "unavailable", reason: message(error) };
  }
  let workers: WorkerChild[] = [];
  let client: Awaited<ReturnType<BenchPath["client"]>> | undefined;
  try {
    client = await within(path.client(spec), 30_000, "starting the producer");
    if (!path.inProcess) workers = await startWorkers(path.id, spec, options.workerProcesses);
    const call = client.call;
    // A path in this process (in memory) also has the producer's and the workers' JIT to warm up in
    // this very process, and its tasks cost microseconds: warm it with as many tasks as it measures.
    const warmupTasks = path.inProcess ? Math.max(config.warmupTasks, options.tasks) : config.warmupTasks;
    const warm = await runThroughput(call, warmupTasks, config.inflight, config.phaseTimeoutMs);
    if (warm.done < warmupTasks) {
      throw new Error(`warm-up: ${warm.done}/${warmupTasks} done${describe(warm)}`);
    }
    const background = await brokerBackgroundMsPerSec(path.broker);
    const meter = new AllocMeter();
    const workersBefore: CpuSample[] = await Promise.all(workers.map((w) => w.cpu()));
    const producerBefore = process.cpuUsage();
    const allocBefore = meter.read();
    const brokerBefore = brokerCpuMs(path.broker);
    const run = await runThroughput(call, options.tasks, config.inflight, config.phaseTimeoutMs);
    const producerAlloc = meter.read() - allocBefore;
    const producer = cpuMs(producerBefore);
    meter.stop();
    const worked = await workersAlloc(workers, workersBefore);
    const workerMs = worked.cpuMs;
    const brokerAfter = brokerCpuMs(path.broker);
    if (run.done < options.tasks) {
      throw new Error(`throughput: ${run.done}/${options.tasks} done${describe(run)}`);
    }
    result.tasks = run.done;
    result.tasksPerSec = (run.done * 1000) / run.elapsedMs;
    const per1k = 1000 / run.done;
    result.cpuMsPer1k = {
      producer: producer * per1k,
      workers: workerMs * per1k,
      total: (producer + workerMs) * per1k,
    };
    result.allocPerTask = { producer: producerAlloc / run.done, workers: worked.bytes / run.done };
    if (brokerBefore !== undefined && brokerAfter !== undefined && background !== undefined) {
      // Less what the broker burns anyway (other clients of this shared broker, its own timers).
      const ours = brokerAfter - brokerBefore - background * (run.elapsedMs / 1000);
      result.cpuMsPer1k.broker = Math.max(0, ours) * per1k;
    }
    if (options.latency) {
      const calm = await runLatency(call, config.latencyWarmupTasks, config.phaseTimeoutMs);
      if (calm.done < config.latencyWarmupTasks) {
        throw new Error(`latency warm-up: ${calm.done}/${config.latencyWarmupTasks} done${describe(calm)}`);
      }
      const lat = await runLatency(call, config.latencyTasks, config.phaseTimeoutMs);
      if (lat.done < config.latencyTasks) {
        throw new Error(`latency: ${lat.done}/${config.latencyTasks} done${describe(lat)}`);
      }
      result.p50Ms = lat.p50Ms;
      result.p99Ms = lat.p99Ms;
    }
  } catch (error) {
    result.status = "failed";
    result.reason = message(error);
  } finally {
    await stopWorkers(workers);
    await within(client?.close() ?? Promise.resolve(), 20_000, "closing the producer").catch(() => {});
  }
  return result;
}

/** The broker's CPU ms per second while this bench sends it nothing (sampled over one second). */
async function brokerBackgroundMsPerSec(broker: BenchPath["broker"]): Promise<number | undefined> {
  const before = brokerCpuMs(broker);
  if (before === undefined) return undefined;
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = brokerCpuMs(broker);
  return after === undefined ? undefined : ((after - before) * 1000) / (performance.now() - t0);
}

function describe(phase: { timedOut: boolean; errors: number; firstError?: string }): string {
  const parts: string[] = [];
  if (phase.timedOut) parts.push("deadline reached");
  if (phase.errors > 0) parts.push(`${phase.errors} errors, first: ${phase.firstError}`);
  return parts.length > 0 ? ` (${parts.join("; ")})` : "";
}
