/**
 * Latency of a fastagentic path and its raw baseline measured side by side: both producers and
 * their worker processes are up at once, and blocks of one-at-a-time calls alternate between the
 * two (A B, B A, A B, …). Load from elsewhere on this shared machine then falls on both alike, so
 * the ratio of their p50s compares the paths, not two moments of the machine. The round-trip
 * phases keep their own latency figures; the p50 targets use these.
 */
import type { BenchConfig } from "../bench-config.js";
import { type BenchPath, type PathSpec, within } from "../paths/bench-path.js";
import type { CpuPerCall, PairedLatencyResult } from "../report/bench-results.js";
import { brokerCpuMs } from "./broker-cpu.js";
import { type Call, percentile, runLatency, runThroughput } from "./load-driver.js";
import { startWorkers, stopWorkers, type WorkerChild, workersCpuMs } from "./worker-children.js";

const BLOCK = 100;

interface Side {
  path: BenchPath;
  spec: PathSpec;
  client?: Awaited<ReturnType<BenchPath["client"]>>;
  workers: WorkerChild[];
  samples: number[];
  /** CPU ms spent during this side's blocks. */
  cpu: { producer: number; worker: number; broker: number; brokerKnown: boolean };
}

function newSide(path: BenchPath, spec: PathSpec): Side {
  return {
    path,
    spec,
    workers: [],
    samples: [],
    cpu: { producer: 0, worker: 0, broker: 0, brokerKnown: true },
  };
}

/** Runs one block of one-at-a-time calls on a side, adding the CPU it took to the side's count. */
async function block(side: Side, call: Call, timeoutMs: number) {
  const producerBefore = process.cpuUsage();
  const workersBefore = await Promise.all(side.workers.map((w) => w.cpu()));
  const brokerBefore = brokerCpuMs(side.path.broker);
  const result = await runLatency(call, BLOCK, timeoutMs);
  const producer = process.cpuUsage(producerBefore);
  const brokerAfter = brokerCpuMs(side.path.broker);
  side.cpu.worker += await workersCpuMs(side.workers, workersBefore);
  side.cpu.producer += (producer.user + producer.system) / 1000;
  if (brokerBefore === undefined || brokerAfter === undefined) side.cpu.brokerKnown = false;
  else side.cpu.broker += brokerAfter - brokerBefore;
  return result;
}

function perCall(side: Side): CpuPerCall {
  const calls = side.samples.length;
  const us = (ms: number) => (ms * 1000) / calls;
  const out: CpuPerCall = { producer: us(side.cpu.producer), worker: us(side.cpu.worker) };
  if (side.cpu.brokerKnown) out.broker = us(side.cpu.broker);
  return out;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function open(side: Side, config: BenchConfig): Promise<Call> {
  await within(side.path.probe(side.spec), 10_000, `probing ${side.path.id}`);
  side.client = await within(side.path.client(side.spec), 30_000, `starting the ${side.path.id} producer`);
  side.workers = await startWorkers(side.path.id, side.spec, 1);
  const call = side.client.call;
  // Warm both ends (JIT, consumers, connections) the way the round trips do.
  const warm = await runThroughput(call, config.warmupTasks, config.inflight, config.phaseTimeoutMs);
  if (warm.done < config.warmupTasks) throw new Error(`${side.path.id} warm-up: ${warm.done} done`);
  return call;
}

/**
 * Blocks of one-at-a-time calls, alternating between the sides in the order A B, B A, A B, …
 * `measure` false: the one-at-a-time warm-up (see BenchConfig.latencyWarmupTasks), run the same
 * way, so that the measured blocks continue an alternation already under way and neither side
 * starts warmer than the other (warmed one after the other, the side warmed last started ahead).
 */
async function alternate(
  sides: readonly [Side, Side],
  calls: ReadonlyMap<Side, Call>,
  blocks: number,
  measure: boolean,
  timeoutMs: number,
): Promise<void> {
  const [a, b] = sides;
  const deadline = performance.now() + timeoutMs;
  for (let i = 0; i < blocks; i++) {
    for (const side of i % 2 === 0 ? [a, b] : [b, a]) {
      const left = Math.max(1, deadline - performance.now());
      const call = calls.get(side) as Call;
      const run = measure ? await block(side, call, left) : await runLatency(call, BLOCK, left);
      if (run.done < BLOCK) {
        throw new Error(
          `${side.path.id}: ${run.done}/${BLOCK} calls done in ${measure ? "" : "warm-up "}block ${i + 1}` +
            (run.timedOut ? " (deadline reached)" : run.firstError ? ` (${run.firstError})` : ""),
        );
      }
      if (measure) side.samples.push(...run.samples);
    }
  }
}

async function close(side: Side): Promise<void> {
  await stopWorkers(side.workers);
  await within(side.client?.close() ?? Promise.resolve(), 20_000, "closing a producer").catch(() => {});
}

export async function measurePairedLatency(
  path: BenchPath,
  baseline: BenchPath,
  specFor: (name: string) => PathSpec,
  config: BenchConfig,
): Promise<PairedLatencyResult> {
  const a = newSide(path, specFor(`${path.id}-paired`));
  const b = newSide(baseline, specFor(`${baseline.id}-paired`));
  const blocks = Math.max(2, Math.round(config.latencyTasks / BLOCK));
  const result: PairedLatencyResult = {
    id: path.id,
    baseline: baseline.id,
    label: path.label,
    status: "ok",
    blocks,
    callsPerBlock: BLOCK,
  };
  try {
    const calls = new Map<Side, Call>([
      [a, await open(a, config)],
      [b, await open(b, config)],
    ]);
    const warmBlocks = Math.ceil(config.latencyWarmupTasks / BLOCK);
    await alternate([a, b], calls, warmBlocks, false, 2 * config.phaseTimeoutMs);
    await alternate([a, b], calls, blocks, true, config.phaseTimeoutMs);
    a.samples.sort((x, y) => x - y);
    b.samples.sort((x, y) => x - y);
    result.p50Ms = percentile(a.samples, 0.5);
    result.p99Ms = percentile(a.samples, 0.99);
    result.baselineP50Ms = percentile(b.samples, 0.5);
    result.baselineP99Ms = percentile(b.samples, 0.99);
    result.cpuUsPerCall = perCall(a);
    result.baselineCpuUsPerCall = perCall(b);
  } catch (error) {
    result.status = "failed";
    result.reason = message(error);
  } finally {
    await close(a);
    await close(b);
  }
  return result;
}
