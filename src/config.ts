/**
 * Configuration: defaults, and validation that names the bad key and says what to do. Unknown
 * keys are errors (a typo must not silently fall back to a default), with a suggestion.
 */
import { ConfigError, describeThrown } from "./errors.js";
import { type Check, durationIn, intIn, LIMITS, numberIn, showValue } from "./limits.js";
import { MAX_TAGS_PER_WORKER, normalizeTags } from "./names.js";

const duration: Check = durationIn(0);
const positiveDuration: Check = durationIn(1);
const bool: Check = (v) => (typeof v === "boolean" ? undefined : "true or false");
const ratio: Check = (v) => (typeof v === "number" && v >= 0 && v <= 1 ? undefined : "a number from 0 to 1");
const multiplier: Check = numberIn(1, 1000);
const str: Check = (v) => (typeof v === "string" && v.length > 0 ? undefined : "a non-empty string");
const tags: Check = (v) => {
  try {
    if (normalizeTags(v as string[]).length <= MAX_TAGS_PER_WORKER) return undefined;
    return `at most ${MAX_TAGS_PER_WORKER} tags (every task's tags are matched against them)`;
  } catch (e) {
    return (e as Error).message;
  }
};

function validate<T extends object>(
  what: string,
  input: unknown,
  schema: Record<string, Check | Record<string, Check>>,
): Partial<T> {
  if (input === undefined) return {};
  if (typeof input !== "object" || input === null || isArray(input)) {
    throw new ConfigError(`${what} must be an object, got ${showValue(input)}.`);
  }
  let entries: Array<[string, unknown]>;
  try {
    entries = Object.entries(input);
  } catch (error) {
    throw new ConfigError(`${what} could not be read (${describeThrown(error)}); pass a plain object.`, {
      cause: error,
    });
  }
  for (const [key, value] of entries) {
    if (value === undefined) continue;
    const check = schema[key];
    if (check === undefined) {
      const known = Object.keys(schema);
      const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
      const guess =
        known.find((k) => k === camel) ??
        known.find((k) => k === `${camel}Ms`) ??
        known.find((k) => k.toLowerCase() === key.toLowerCase());
      throw new ConfigError(
        `Unknown option "${key}" in ${what}.` +
          (guess ? ` Did you mean "${guess}"?` : "") +
          ` Known options: ${known.join(", ")}.`,
      );
    }
    if (typeof check === "function") {
      const problem = check(value);
      if (problem !== undefined) {
        throw new ConfigError(`${what}.${key} must be ${problem}; got ${showValue(value)}.`);
      }
    } else {
      validate(`${what}.${key}`, value, check);
    }
  }
  return input as Partial<T>;
}

export interface RetryBackoff {
  /** Delay before the first retry. */
  initialMs: number;
  multiplier: number;
  maxMs: number;
  /** 0..1: each delay is randomly shortened by up to this fraction, to spread retries out. */
  jitter: number;
}

export interface RestartIntensity {
  /** At most this many restarts… */
  maxRestarts: number;
  /** …within this window, then the supervisor escalates. */
  periodMs: number;
}

export interface WorkerConfig {
  maxConcurrentTasks: number;
  heartbeatIntervalMs: number;
  /** Default timeout of a task that does not set its own. */
  taskTimeoutMs: number;
  tags: string[];
  gracefulShutdownTimeoutMs: number;
  /**
   * Deliveries without an outcome (its worker died mid-task) tolerated beyond a task's attempts,
   * before the task is dead-lettered as poison.
   */
  maxRedeliveries: number;
  /**
   * A worker that notices its own heartbeat came this much late (its process was frozen or its
   * event loop stalled) presumes it was declared dead and leaves; its pool starts a new one.
   * Keep it at or under the coordinator's workerTimeoutMs.
   */
  stallTimeoutMs: number;
  /**
   * Task outcomes also published on the event bus as `task.completed|failed|cancelled|timeout`:
   * "off" (default: no broker write more per task), "durable" (stored, confirmed before the task is
   * acked) or "fast" (`durable: false`: live subscribers only, at most once).
   */
  lifecycleEvents: "off" | "durable" | "fast";
  /**
   * Handlers that ignored `ctx.signal` after their timeout or cancellation and still run, tolerated
   * per worker: past it, the worker takes no more tasks and is replaced by its pool's supervisor.
   */
  maxAbandonedHandlers: number;
}

export interface CoordinatorConfig {
  minWorkers: number;
  maxWorkers: number;
  autoScale: boolean;
  scaleUpThreshold: number;
  scaleDownThreshold: number;
  healthCheckIntervalMs: number;
  workerTimeoutMs: number;
  autoScaleIntervalMs: number;
  scaleDownDelayMs: number;
  maxQueueSize: number;
  queueName: string;
  defaultTimeoutMs: number;
  defaultRetries: number;
  retryBackoff: RetryBackoff;
  restartIntensity: RestartIntensity;
  /** Finished tasks kept for getTask()/waitFor() (oldest forgotten first). */
  maxFinishedTasks: number;
}

/** What a user passes: every key optional, nested objects too. */
export type CoordinatorConfigInput = Partial<Omit<CoordinatorConfig, "retryBackoff" | "restartIntensity">> & {
  retryBackoff?: Partial<RetryBackoff>;
  restartIntensity?: Partial<RestartIntensity>;
};

export const DEFAULT_RETRY_BACKOFF: RetryBackoff = {
  initialMs: 1000,
  multiplier: 2,
  maxMs: 60_000,
  jitter: 0.1,
};
export const DEFAULT_RESTART_INTENSITY: RestartIntensity = { maxRestarts: 5, periodMs: 60_000 };

export const DEFAULT_WORKER_CONFIG: WorkerConfig = {
  maxConcurrentTasks: 4,
  heartbeatIntervalMs: 5000,
  taskTimeoutMs: 300_000,
  tags: [],
  gracefulShutdownTimeoutMs: 30_000,
  maxRedeliveries: 3,
  stallTimeoutMs: 30_000,
  lifecycleEvents: "off",
  maxAbandonedHandlers: 10,
};

export const DEFAULT_COORDINATOR_CONFIG: CoordinatorConfig = {
  minWorkers: 1,
  maxWorkers: 10,
  autoScale: true,
  scaleUpThreshold: 10,
  scaleDownThreshold: 2,
  healthCheckIntervalMs: 10_000,
  workerTimeoutMs: 30_000,
  autoScaleIntervalMs: 1000,
  scaleDownDelayMs: 5000,
  maxQueueSize: 100_000,
  queueName: "default",
  defaultTimeoutMs: 300_000,
  defaultRetries: 0,
  retryBackoff: DEFAULT_RETRY_BACKOFF,
  restartIntensity: DEFAULT_RESTART_INTENSITY,
  maxFinishedTasks: 100_000,
};

const backoffSchema = { initialMs: duration, multiplier, maxMs: duration, jitter: ratio };
const intensitySchema = { maxRestarts: intIn(0, LIMITS.restarts), periodMs: positiveDuration };

/** A partial RetryBackoff, validated, over the defaults. */
export function resolveRetryBackoff(input: Partial<RetryBackoff> | undefined, what: string): RetryBackoff {
  const given = validate<RetryBackoff>(what, input, backoffSchema);
  return { ...DEFAULT_RETRY_BACKOFF, ...definedOnly(given) };
}

export function resolveWorkerConfig(input: unknown, what = "WorkerConfig"): WorkerConfig {
  const given = validate<WorkerConfig>(what, input, {
    maxConcurrentTasks: intIn(1, LIMITS.concurrency),
    heartbeatIntervalMs: positiveDuration,
    taskTimeoutMs: positiveDuration,
    tags,
    gracefulShutdownTimeoutMs: duration,
    maxRedeliveries: intIn(0, LIMITS.redeliveries),
    stallTimeoutMs: positiveDuration,
    lifecycleEvents: (v: unknown) =>
      v === "off" || v === "durable" || v === "fast" ? undefined : '"off", "durable" or "fast"',
    maxAbandonedHandlers: intIn(0, LIMITS.concurrency),
  });
  const config = { ...DEFAULT_WORKER_CONFIG, ...definedOnly(given) };
  config.tags = normalizeTags(config.tags);
  return config;
}

export function resolveCoordinatorConfig(input: unknown, what = "CoordinatorConfig"): CoordinatorConfig {
  const given = validate<CoordinatorConfig>(what, input, {
    minWorkers: intIn(0, LIMITS.workers),
    maxWorkers: intIn(0, LIMITS.workers),
    autoScale: bool,
    scaleUpThreshold: intIn(1, LIMITS.queueSize),
    scaleDownThreshold: intIn(0, LIMITS.queueSize),
    healthCheckIntervalMs: positiveDuration,
    workerTimeoutMs: positiveDuration,
    autoScaleIntervalMs: positiveDuration,
    scaleDownDelayMs: duration,
    maxQueueSize: intIn(1, LIMITS.queueSize),
    queueName: str,
    defaultTimeoutMs: positiveDuration,
    defaultRetries: intIn(0, LIMITS.retries),
    retryBackoff: backoffSchema,
    restartIntensity: intensitySchema,
    maxFinishedTasks: intIn(0, LIMITS.finishedTasks),
  });
  const config: CoordinatorConfig = {
    ...DEFAULT_COORDINATOR_CONFIG,
    ...definedOnly(given),
    retryBackoff: { ...DEFAULT_RETRY_BACKOFF, ...definedOnly(given.retryBackoff ?? {}) },
    restartIntensity: { ...DEFAULT_RESTART_INTENSITY, ...definedOnly(given.restartIntensity ?? {}) },
  };
  assertMinMax(what, config.minWorkers, config.maxWorkers);
  if (config.scaleDownThreshold >= config.scaleUpThreshold) {
    throw new ConfigError(
      `${what}.scaleDownThreshold (${config.scaleDownThreshold}) must be below scaleUpThreshold ` +
        `(${config.scaleUpThreshold}): the gap between them keeps the worker count from flapping.`,
    );
  }
  if (config.workerTimeoutMs <= config.healthCheckIntervalMs / 10) {
    throw new ConfigError(
      `${what}.workerTimeoutMs (${config.workerTimeoutMs}) is too short for healthCheckIntervalMs ` +
        `(${config.healthCheckIntervalMs}); make it a few heartbeat intervals long.`,
    );
  }
  applyPureClientRules(config, given, what);
  return config;
}

export function assertMinMax(what: string, minWorkers: number, maxWorkers: number): void {
  if (minWorkers > maxWorkers) {
    throw new ConfigError(
      `${what}: minWorkers (${minWorkers}) is greater than maxWorkers (${maxWorkers}). ` +
        "Set minWorkers ≤ maxWorkers.",
    );
  }
}

export function validatePoolOptions(input: unknown): void {
  validate("WorkerPoolOptions", input, {
    minWorkers: intIn(0, LIMITS.workers),
    maxWorkers: intIn(0, LIMITS.workers),
    config: () => undefined,
    transport: () => undefined,
    id: str,
    queueName: str,
    clock: () => undefined,
    logger: () => undefined,
    retryBackoff: backoffSchema,
    restartIntensity: intensitySchema,
    registry: () => undefined,
    entities: () => undefined,
    keepAlive: bool,
  });
}

const keySets = new WeakMap<readonly string[], Set<string>>();

/** Validates the top-level options object of a call (checks only that its keys are known). */
export function validateKeys(what: string, input: unknown, keys: readonly string[]): void {
  if (typeof input !== "object" || input === null) {
    if (input === undefined) return;
    throw new ConfigError(`${what} must be an object, got ${showValue(input)}.`);
  }
  let known = keySets.get(keys);
  if (!known) {
    known = new Set(keys);
    keySets.set(keys, known);
  }
  let unknown = false;
  try {
    for (const key in input) if (!known.has(key)) unknown = true;
  } catch (error) {
    throw new ConfigError(`${what} could not be read (${describeThrown(error)}); pass a plain object.`, {
      cause: error,
    });
  }
  if (unknown) validate(what, input, Object.fromEntries(keys.map((k) => [k, () => undefined])));
}

/**
 * Validates the keys of a call's options object (as validateKeys) and returns a plain copy of the
 * known ones, read once: an object whose reads throw (a hostile Proxy, a throwing getter) is a
 * ConfigError here, never a TypeError later; null and non-objects are refused (undefined: `{}`).
 */
export function readOptions(what: string, input: unknown, keys: readonly string[]): Record<string, unknown> {
  if (input === undefined) return {};
  if (typeof input !== "object" || input === null || isArray(input)) {
    throw new ConfigError(`${what} must be an object, got ${showValue(input)}.`);
  }
  validateKeys(what, input, keys);
  const copy: Record<string, unknown> = {};
  try {
    for (const key of keys) {
      const value = (input as Record<string, unknown>)[key];
      if (value !== undefined) copy[key] = value;
    }
  } catch (error) {
    throw new ConfigError(`${what} could not be read (${describeThrown(error)}); pass a plain object.`, {
      cause: error,
    });
  }
  return copy;
}

/** Array.isArray, true for a revoked Proxy too (whose IsArray throws): neither is an options object. */
function isArray(value: unknown): boolean {
  try {
    return Array.isArray(value);
  } catch {
    return true;
  }
}

/** A partial RetryBackoff checked against the same bounds as the coordinator's (undefined keys dropped). */
export function checkRetryBackoff(input: unknown, what: string): Partial<RetryBackoff> {
  return definedOnly(validate<RetryBackoff>(what, input, backoffSchema));
}

export function backoffDelay(
  backoff: RetryBackoff,
  attempt: number,
  random: () => number = Math.random,
): number {
  const raw = Math.min(backoff.maxMs, backoff.initialMs * backoff.multiplier ** Math.max(0, attempt - 1));
  return Math.round(raw * (1 - backoff.jitter * random()));
}

/** The object without its undefined properties (so they do not override defaults). */
export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---- Rules across keys (and across a coordinator and its workers) --------------------------------

/**
 * `maxWorkers: 0` is a pure client (no local workers): auto-scaling is off unless asked for, and
 * asking for it is refused (there is no room between 0 and 0 to scale the cluster in).
 */
function applyPureClientRules(
  config: CoordinatorConfig,
  given: Partial<CoordinatorConfig>,
  what: string,
): void {
  if (config.maxWorkers > 0) return;
  if (given.autoScale === true) {
    throw new ConfigError(
      `${what}: autoScale is true but maxWorkers is 0, which leaves no room to scale in (a pure client ` +
        "scales the remote pools between minWorkers and maxWorkers). Set maxWorkers above 0, or autoScale: false.",
    );
  }
  config.autoScale = false;
}

/** A worker is declared dead after this many heartbeat intervals at the least. */
export const MIN_HEARTBEATS_PER_TIMEOUT = 2;

/**
 * Whether a worker heartbeating every `heartbeatIntervalMs` survives a coordinator that declares
 * workers dead after `workerTimeoutMs`: it must have at least MIN_HEARTBEATS_PER_TIMEOUT intervals,
 * so that one late or lost heartbeat does not kill a healthy worker. Returns the problem, or
 * undefined; `names` are how the caller calls the two settings.
 */
export function heartbeatTimingProblem(
  workerTimeoutMs: number,
  heartbeatIntervalMs: number,
  names = { timeout: "workerTimeoutMs", interval: "heartbeatIntervalMs" },
): string | undefined {
  const n = MIN_HEARTBEATS_PER_TIMEOUT;
  if (workerTimeoutMs >= n * heartbeatIntervalMs) return undefined;
  return (
    `${names.timeout} (${workerTimeoutMs}) is shorter than ${n} heartbeat intervals (${names.interval} ` +
    `${heartbeatIntervalMs}): every healthy worker would be declared dead between two heartbeats. Set ` +
    `${names.timeout} ≥ ${n * heartbeatIntervalMs}, or ${names.interval} ≤ ${Math.floor(workerTimeoutMs / n)}.`
  );
}

/**
 * The coordinator's config against the workers it starts itself, checked when it starts with
 * handlers (then it runs local workers): contradictions are a ConfigError. Remote workers announce
 * their interval in their heartbeats; the coordinator warns about those (src/cluster/membership.ts).
 */
export function assertLocalWorkers(what: string, config: CoordinatorConfig, worker: WorkerConfig): void {
  if (config.maxWorkers === 0) {
    throw new ConfigError(
      `${what}: handlers are registered but maxWorkers is 0, so no local worker would ever run them. ` +
        "Set maxWorkers above 0, or register the handlers in worker processes (fastagentic worker) instead.",
    );
  }
  const problem = heartbeatTimingProblem(config.workerTimeoutMs, worker.heartbeatIntervalMs, {
    timeout: "config.workerTimeoutMs",
    interval: "workerConfig.heartbeatIntervalMs",
  });
  if (problem !== undefined) throw new ConfigError(`${what}: ${problem}`);
}
