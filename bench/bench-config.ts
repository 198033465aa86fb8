import type { PathSpec } from "./paths/bench-path.js";

/**
 * What a bench run measures and how much: counts from flags (`--tasks=5000`) or the environment
 * (`BENCH_TASKS=5000`), with `--quick` for a smoke run. Every phase has a time bound.
 */

export interface BenchConfig {
  quick: boolean;
  /** Throughput phase: this many round trips… */
  tasks: number;
  /** …with this many in flight at once. */
  inflight: number;
  /** Latency phase: this many round trips, one at a time. */
  latencyTasks: number;
  /** Round trips before measuring (JIT, connections, consumers). */
  warmupTasks: number;
  /**
   * One-at-a-time round trips before a latency phase. Calls one at a time take other code paths
   * (a batch of one event, a pull of one message) than the throughput phase warmed up, and each
   * function runs once per call: measured here, a fastagentic path needs about 4,000 such calls
   * before its latency stops falling (p50 2.5 → 1.0 ms on RabbitMQ), a raw client about 2,000.
   */
  latencyWarmupTasks: number;
  /** Deliveries a worker process holds at once (fastagentic maxConcurrentTasks = raw prefetch). */
  concurrency: number;
  /** Upper bound of one measured phase, in ms. */
  phaseTimeoutMs: number;
  /**
   * Rounds over all round-trip paths (interleaved, so a burst of load on this shared machine
   * does not land on one path only); each path reports its best round.
   */
  rounds: number;
  /** Worker-process counts for the scaling runs. */
  scalingWorkers: number[];
  scalingTasks: number;
  /** Tasks queued (no worker) for the memory-per-task measure. */
  queuedTasks: number;
  /** Tasks a worker holds when it is killed, for the failover measure. */
  failoverTasks: number;
  /** Round-trip paths to run (ids); empty: all. */
  only: string[];
  /**
   * Sections to skip: "paired", "scaling" (worker processes and task types), "types" (task types
   * only), "failover", "memory", "xstate", "events", "dashboard", "entities".
   */
  skip: string[];
  /**
   * Sections to run, and only those (empty: all): the above and "roundtrips" (the round trips of the
   * paths). A run of some sections updates those in latest.json and keeps the rest.
   */
  sections: string[];
  /** Event bus rows to run (ids, e.g. ev-fa-nats-live,ev-moleculer-nats); empty: all. */
  events: string[];
  natsUrl: string;
  amqpUrl: string;
  redisUrl: string;
  /** Where latest.json and throughput.svg go. */
  resultsDir: string;
}

const FULL = {
  tasks: 20_000,
  inflight: 1_000,
  latencyTasks: 2_000,
  warmupTasks: 1_000,
  latencyWarmupTasks: 5_000,
  concurrency: 128,
  phaseTimeoutMs: 60_000,
  rounds: 2,
  scalingWorkers: [1, 2, 4],
  scalingTasks: 10_000,
  queuedTasks: 100_000,
  failoverTasks: 100,
};

const QUICK: typeof FULL = {
  tasks: 2_000,
  inflight: 200,
  latencyTasks: 200,
  warmupTasks: 200,
  latencyWarmupTasks: 200,
  concurrency: 128,
  phaseTimeoutMs: 20_000,
  rounds: 1,
  scalingWorkers: [1, 2],
  scalingTasks: 1_000,
  queuedTasks: 20_000,
  failoverTasks: 20,
};

export const USAGE = `npm run bench -- [--quick] [--only=fa-nats,raw-jetstream,…] [--skip=paired,scaling,types,failover,memory,xstate,events,dashboard,entities]
  [--sections=roundtrips,paired,memory,xstate,dashboard,scaling,types,failover,events,entities] [--events=ev-fa-nats-live,ev-moleculer-nats,…]
  [--tasks=N] [--inflight=N] [--latency-tasks=N] [--warmup-tasks=N] [--latency-warmup-tasks=N] [--concurrency=N]
  [--phase-timeout-ms=N] [--rounds=N] [--scaling-workers=1,2,4] [--scaling-tasks=N] [--queued-tasks=N]
  [--failover-tasks=N] [--nats-url=…] [--amqp-url=…] [--redis-url=…] [--results-dir=…]
Each flag may also be given as an environment variable: --latency-tasks=N is BENCH_LATENCY_TASKS=N.`;

/** What both ends of a path get: a namespace of its own in this run, the broker URLs. */
export function pathSpec(config: BenchConfig, runId: string, name: string): PathSpec {
  return {
    ns: fitNamespace(`bench-${runId}-${name}`),
    concurrency: config.concurrency,
    natsUrl: config.natsUrl,
    amqpUrl: config.amqpUrl,
    redisUrl: config.redisUrl,
  };
}

/** A namespace within every transport's 32 characters: a longer one keeps its start and a hash of the whole. */
function fitNamespace(ns: string): string {
  if (ns.length <= 32) return ns;
  let hash = 0x811c9dc5;
  for (let i = 0; i < ns.length; i++) hash = Math.imul(hash ^ ns.charCodeAt(i), 0x01000193) >>> 0;
  return `${ns.slice(0, 23)}-${hash.toString(16).padStart(8, "0")}`;
}

/** A bench tool's own `--name=N` flag: a positive integer, `fallback` when it is not given. */
export function positiveFlag(own: ReadonlyMap<string, string>, name: string, fallback: number): number {
  const n = Number(own.get(name) ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer`);
  return n;
}

/**
 * Arguments of a bench tool (bench/pair-latency.ts, latency-blocks.ts, broker-floor.ts, …): its own
 * `--name=value` flags apart, the rest read as bench flags (URLs, counts) after `defaults`.
 */
export function parseToolArgs(
  argv: readonly string[],
  ownFlags: readonly string[],
  defaults: readonly string[] = [],
): { own: Map<string, string>; config: BenchConfig } {
  const own = new Map<string, string>();
  const rest: string[] = [];
  for (const arg of argv) {
    const m = /^--([a-z]+)=(.*)$/.exec(arg);
    if (m && ownFlags.includes(m[1] as string)) own.set(m[1] as string, m[2] as string);
    else rest.push(arg);
  }
  return { own, config: parseBenchConfig([...defaults, ...rest]) };
}

/** Reads `--key=value` / `--flag` arguments, falling back to BENCH_KEY environment variables. */
export function parseBenchConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const flags = new Map<string, string>();
  for (const arg of argv) {
    if (arg === "--help" || arg === "-h") throw new UsageError(USAGE);
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new UsageError(`Unknown argument "${arg}".\n${USAGE}`);
    flags.set(m[1] as string, m[2] ?? "true");
  }
  const get = (key: string): string | undefined =>
    flags.get(key) ?? env[`BENCH_${key.toUpperCase().replaceAll("-", "_")}`];
  const quick = get("quick") === "true" || get("quick") === "1";
  const base = quick ? QUICK : FULL;
  const int = (key: string, fallback: number): number => {
    const raw = get(key);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1)
      throw new UsageError(`--${key} must be a positive integer, got "${raw}".`);
    return n;
  };
  const list = (key: string): string[] =>
    (get(key) ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  const scaling = list("scaling-workers").map(Number);
  if (scaling.some((n) => !Number.isInteger(n) || n < 1 || n > 16)) {
    throw new UsageError("--scaling-workers takes a comma-separated list of 1..16, e.g. 1,2,4.");
  }
  return {
    quick,
    tasks: int("tasks", base.tasks),
    inflight: int("inflight", base.inflight),
    latencyTasks: int("latency-tasks", base.latencyTasks),
    warmupTasks: int("warmup-tasks", base.warmupTasks),
    latencyWarmupTasks: int("latency-warmup-tasks", base.latencyWarmupTasks),
    concurrency: int("concurrency", base.concurrency),
    phaseTimeoutMs: int("phase-timeout-ms", base.phaseTimeoutMs),
    rounds: int("rounds", base.rounds),
    scalingWorkers: scaling.length > 0 ? scaling : base.scalingWorkers,
    scalingTasks: int("scaling-tasks", base.scalingTasks),
    queuedTasks: int("queued-tasks", base.queuedTasks),
    failoverTasks: int("failover-tasks", base.failoverTasks),
    only: list("only"),
    skip: list("skip"),
    sections: sections(list("sections")),
    events: list("events"),
    natsUrl: get("nats-url") ?? "nats://127.0.0.1:4222",
    amqpUrl: get("amqp-url") ?? "amqp://guest:guest@127.0.0.1:5672",
    redisUrl: get("redis-url") ?? "redis://127.0.0.1:6379",
    resultsDir: get("results-dir") ?? "bench/results",
  };
}

export const SECTIONS = [
  "roundtrips",
  "paired",
  "memory",
  "xstate",
  "dashboard",
  "scaling",
  "types",
  "failover",
  "events",
  "entities",
] as const;

function sections(names: string[]): string[] {
  const unknown = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new UsageError(`Unknown section(s) ${unknown.join(", ")}: use ${SECTIONS.join(", ")}.`);
  }
  return names;
}

/** Whether a section runs: named by --sections (or none named), and not in --skip. */
export function runsSection(config: BenchConfig, section: (typeof SECTIONS)[number]): boolean {
  return (
    (config.sections.length === 0 || config.sections.includes(section)) && !config.skip.includes(section)
  );
}

export class UsageError extends Error {
  override readonly name = "UsageError";
}
