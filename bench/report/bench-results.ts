/** The shape of bench/results/latest.json. */
import type { BenchConfig } from "../bench-config.js";
import type { CombinedResult } from "../harness/best-round.js";
import type { RoundTripResult } from "../harness/round-trip.js";
import type { DashboardCostResult } from "../measures/dashboard-cost.bench.js";

export interface QueuedMemoryResult {
  tasks: number;
  /** V8 heap (heapUsed) per queued task. */
  heapBytesPerTask: number;
  /** Off-heap ArrayBuffer memory (encoded messages) per queued task. */
  arrayBufferBytesPerTask: number;
  /** The task's data as JSON, the payload the target does not count. */
  payloadBytes: number;
  /** heap + array buffers − payload: what the target is about. */
  netBytesPerTask: number;
}

export interface XStateResult {
  actors: number;
  /** createActor + start + 2 events + stop, per actor. */
  actorLifecycleUs: number;
  /** One pure `transition(machine, snapshot, event)`. */
  pureTransitionUs: number;
  /** One lookup in fastagentic's table compiled from the task machine (what the hot path does). */
  compiledLookupNs: number;
  heapBytesPerLiveActor: number;
  heapBytesPerSnapshot: number;
}

export interface ScalingRow {
  workerProcesses: number;
  status: RoundTripResult["status"];
  reason?: string;
  tasksPerSec?: number;
}

export interface ScalingResult {
  id: string;
  label: string;
  rows: ScalingRow[];
}

export interface FailoverResult {
  id: string;
  label: string;
  status: RoundTripResult["status"];
  reason?: string;
  /** Tasks the killed worker held. */
  tasks?: number;
  /** From the SIGKILL to the first of them completing on the survivor. */
  firstDoneMs?: number;
  /** From the SIGKILL to the last of them completing on the survivor. */
  allDoneMs?: number;
}

/** A fastagentic path and its raw baseline, latency measured in alternating blocks (paired-latency.ts). */
export interface PairedLatencyResult {
  id: string;
  baseline: string;
  label: string;
  status: "ok" | "failed";
  reason?: string;
  blocks: number;
  callsPerBlock: number;
  p50Ms?: number;
  p99Ms?: number;
  baselineP50Ms?: number;
  baselineP99Ms?: number;
  /** CPU µs per one-at-a-time call, where the latency goes: the producer, the worker, the broker. */
  cpuUsPerCall?: CpuPerCall;
  baselineCpuUsPerCall?: CpuPerCall;
}

export interface CpuPerCall {
  producer: number;
  worker: number;
  /** Read from /proc in 10 ms ticks: coarse per block, fair over all of them. */
  broker?: number;
}

export interface TargetResult {
  name: string;
  status: "PASS" | "MISS" | "N/A";
  value?: number;
  limit: number;
  comparator: ">=" | "<=";
  unit: string;
  detail: string;
}

export interface BenchResults {
  date: string;
  machine: {
    cpus: number;
    cpuModel: string;
    node: string;
    /** 1-minute load average: this machine is shared; above its core count, other work competed. */
    loadAverageAtStart: number;
    loadAverageAtEnd?: number;
    /** The fastagentic code measured: the build (dist/) unless run without `npm run bench`. */
    codeUnderTest: string;
  };
  config: BenchConfig;
  roundTrips: CombinedResult[];
  /** Latency of each broker path interleaved with its raw baseline (what the p50 targets use). */
  pairedLatency?: PairedLatencyResult[];
  queuedMemory?: QueuedMemoryResult | { error: string };
  xstate?: XStateResult | { error: string };
  scaling?: ScalingResult[];
  /** One worker serving 1…300 task types (section "scaling", bench/harness/type-scaling.ts). */
  typeScaling?: import("../harness/type-scaling.js").TypeScalingResult[];
  failover?: FailoverResult[];
  /** The event bus section (bench/harness/events-bench.ts). */
  events?: import("../harness/events-bench.js").EventsResults;
  /** The entities section (bench/harness/entities-bench.ts). */
  entities?: import("../harness/entities-bench.js").EntitiesResults;
  /** Sections measured by a later run of only those (`--sections=…`): when, and the load then. */
  sectionRuns?: Record<string, { date: string; loadAverageAtStart: number }>;
  /** The dashboard's cost to the coordinator (bench/measures/dashboard-cost.bench.ts). */
  dashboard?: DashboardCostResult;
  targets: TargetResult[];
  durationSec?: number;
}
