/**
 * The upper bound of every duration and count the library accepts, and the checks that apply
 * them at each boundary (options objects, submit options, HTTP bodies, CLI flags, transport
 * options). A duration past what a timer can wait would not wait at all: Node runs a timer of
 * more than 2^31 − 1 ms after 1 ms (a task would time out at once, a heartbeat loop would spin).
 */
import { ConfigError } from "./errors.js";

/** The longest duration a timer can wait: 2^31 − 1 ms, about 24.8 days. */
export const MAX_DURATION_MS = 2_147_483_647;

/** Upper bounds of the counts. */
export const LIMITS = {
  /** Workers of one pool, or of a cluster a coordinator scales. */
  workers: 10_000,
  /** Tasks one worker runs at once. */
  concurrency: 10_000,
  /** Retries of one task (after its first attempt). */
  retries: 1_000,
  /** Redeliveries without an outcome tolerated beyond a task's attempts. */
  redeliveries: 1_000,
  /** Restarts within a supervisor's restart period. */
  restarts: 10_000,
  /** Tasks waiting in a queue (maxQueueSize) or in a scaling threshold. */
  queueSize: 1_000_000_000,
  /** Finished tasks remembered for getTask()/waitFor(). */
  finishedTasks: 10_000_000,
} as const;

/** A check returns what the value must be, or undefined when it is fine. */
export type Check = (value: unknown) => string | undefined;

const MAX_SHOWN_CHARS = 200;

/**
 * A value as a message shows it: NaN, Infinity, undefined and BigInts by name (JSON would print
 * `null` or throw), anything else as short JSON. Never throws.
 */
export function showValue(value: unknown): string {
  switch (typeof value) {
    case "number":
      return String(value); // NaN, Infinity and -Infinity by name
    case "bigint":
      return `${value}n`;
    case "undefined":
      return "undefined";
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined;
  }
  if (json === undefined) return `a value that is not JSON (${typeof value})`;
  return json.length > MAX_SHOWN_CHARS ? `${json.slice(0, MAX_SHOWN_CHARS)}…` : json;
}

/** An integer from `min` to `max`. */
export function intIn(min: number, max: number): Check {
  return (v) =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= max
      ? undefined
      : `an integer from ${min} to ${max}`;
}

/** A duration in milliseconds from `min` (0 or more) to MAX_DURATION_MS. */
export function durationIn(min: number): Check {
  return (v) =>
    typeof v === "number" && Number.isFinite(v) && v >= min && v <= MAX_DURATION_MS
      ? undefined
      : `a duration in milliseconds from ${min} to ${MAX_DURATION_MS} (about 24.8 days)`;
}

/** A number from `min` to `max` (finite). */
export function numberIn(min: number, max: number): Check {
  return (v) =>
    typeof v === "number" && Number.isFinite(v) && v >= min && v <= max
      ? undefined
      : `a number from ${min} to ${max}`;
}

/** A whole number of milliseconds from `min` to MAX_DURATION_MS (a task's timeoutMs). */
export function wholeMsIn(min: number): Check {
  return (v) =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= MAX_DURATION_MS
      ? undefined
      : `a whole number of milliseconds from ${min} to ${MAX_DURATION_MS} (about 24.8 days)`;
}

/**
 * A whole-number parameter given as text (a URL query parameter, an environment variable): the
 * number, or a ConfigError quoting the text as given ("abc", not "NaN").
 */
export function intParam(what: string, text: string, check: Check): number {
  const n = /^-?\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  const problem = Number.isNaN(n) ? (check(Number.NaN) ?? "a whole number") : check(n);
  if (problem !== undefined) {
    throw new ConfigError(
      `${what} must be ${problem}; got ${showValue(text.length > 40 ? `${text.slice(0, 40)}…` : text)}.`,
    );
  }
  return n;
}

/** Throws a ConfigError naming `what` when `check` refuses `value`; returns the value otherwise. */
export function checked<T>(what: string, value: T, check: Check): T {
  const problem = check(value);
  if (problem !== undefined) throw new ConfigError(`${what} must be ${problem}; got ${showValue(value)}.`);
  return value;
}
