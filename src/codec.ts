/**
 * The wire format: one versioned envelope per task, one per event, JSON in UTF-8. Everything
 * that crosses a transport (the in-memory one too) goes through here, so data that cannot travel
 * fails the same way on every transport, and nothing from the wire is trusted unchecked.
 */
import {
  describeThrown,
  MalformedMessageError,
  NotSerializableError,
  PayloadTooLargeError,
} from "./errors.js";
import type { WorkerInfo } from "./types.js";

export const ENVELOPE_VERSION = 1;

export interface TaskEnvelope {
  v: 1;
  id: string;
  type: string;
  data: unknown;
  priority: number;
  retries: number;
  timeoutMs: number;
  tags: string[];
  metadata: Record<string, unknown>;
  enqueuedAt: number;
  /** The queue (TaskQueue name) the task belongs to; events go back on its subject. */
  queue: string;
  headers: Record<string, string>;
  /**
   * The submitting client's inbox (its task-event subscription's `Subscription.inbox`), where
   * transports that have inboxes send this task's events; absent elsewhere.
   */
  replyTo?: string;
  /**
   * Attempts the task had before it was moved to another lane (src/lane-router.ts): a move is a
   * new message, whose broker delivery count starts again. Absent: none.
   */
  priorAttempts?: number;
}

export type TaskEventKind =
  | "queued"
  | "started"
  | "completed"
  | "failed"
  | "retrying"
  | "cancelled"
  | "timeout";

export interface TaskEvent {
  v: 1;
  kind: TaskEventKind;
  taskId: string;
  at: number;
  attempt?: number;
  workerId?: string;
  result?: unknown;
  error?: string;
  durationMs?: number;
  /** For `retrying`: when the next attempt may start. */
  delayMs?: number;
  /**
   * For `started`, on transports that release a dead worker's deliveries from elsewhere (NATS):
   * the delivery's handle (transports/delivery-release.ts).
   */
  release?: string;
}

export type WorkerEventKind = "heartbeat" | "draining" | "stopped";

export interface WorkerEvent {
  v: 1;
  kind: WorkerEventKind;
  info: WorkerInfo;
  /** In heartbeats, where deliveries can be released from elsewhere: the handles of those it holds. */
  held?: string[];
}

export type ControlCommand =
  | { v: 1; kind: "cancel"; taskIds: string[] }
  | { v: 1; kind: "scale"; poolId?: string; workers: number }
  | { v: 1; kind: "drain"; poolId?: string }
  /** Asks every worker to heartbeat now (the CLI's status). */
  | { v: 1; kind: "ping" }
  /** Asks the workers to send again the outcomes they know of these tasks (a client that reconnected). */
  | { v: 1; kind: "resync"; requestId: string; queue: string; taskIds: string[] }
  /**
   * These workers were declared dead: they leave at once (their replacements join under new ids),
   * forgetting the deliveries `released` (already sent back by the coordinator) instead of settling them.
   */
  | { v: 1; kind: "fence"; workerIds: string[]; released?: string[] };

/** Most entries a list in a control command may carry (ids, handles). */
export const MAX_CONTROL_LIST = 10_000;

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes any message; refuses values JSON would silently change or drop. */
export function encode(value: unknown, limitBytes: number, what = "message"): Uint8Array {
  const bytes = utf8(encodeJson(value, what));
  if (bytes.byteLength > limitBytes) throw new PayloadTooLargeError(bytes.byteLength, limitBytes, what);
  return bytes;
}

/**
 * UTF-8 bytes of a string. Buffer.from takes small strings from a shared pool, where TextEncoder
 * allocates an ArrayBuffer per call, each one more for the garbage collector to sweep.
 */
export function utf8(text: string): Uint8Array {
  return Buffer.from(text, "utf8");
}

/** The JSON text of a value, refusing what JSON would silently change or drop. */
export function encodeJson(value: unknown, what = "message"): string {
  try {
    assertPlainJson(value, "", false, 0);
    return JSON.stringify(value);
  } catch (error) {
    if (error instanceof NotSerializableError) throw error;
    throw new NotSerializableError(
      `The ${what} cannot be encoded as JSON (${describeThrown(error)}). ` +
        "Task data and results must be plain JSON: objects, arrays, strings, finite numbers, booleans, null.",
      { cause: error },
    );
  }
}

/** Walks a value and throws NotSerializableError, naming the key, at anything JSON would mangle. */
function assertPlainJson(value: unknown, key: string, inArray: boolean, depth: number): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (Number.isFinite(value)) return;
      throw notSerializable(key, `the number ${value}`);
    case "undefined":
      if (inArray) throw notSerializable(key, "undefined inside an array");
      return; // an absent optional property: dropped, as JSON does
    case "object": {
      if (value === null) return;
      if (depth > 256) throw notSerializable(key, "nested more than 256 levels deep (or circular)");
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) assertPlainJson(value[i], String(i), true, depth + 1);
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        if (typeof (value as { toJSON?: unknown }).toJSON === "function") return; // Date and friends
        const name = (value as object).constructor?.name ?? "an object with a custom prototype";
        throw notSerializable(key, `a ${name}`);
      }
      for (const k in value) assertPlainJson((value as Record<string, unknown>)[k], k, false, depth + 1);
      return;
    }
    default:
      throw notSerializable(key, `a ${typeof value}`);
  }
}

function notSerializable(key: string, what: string): NotSerializableError {
  const where = key === "" ? "The value" : `The value at key "${key}"`;
  return new NotSerializableError(
    `${where} is ${what}, which cannot travel in a message. Task data and results must be plain JSON ` +
      "(objects, arrays, strings, finite numbers, booleans, null): convert Maps, Sets, class instances, " +
      "BigInts and functions before submitting.",
  );
}

/** Parses a versioned JSON envelope safely (for other codecs: events). */
export function decodeEnvelope(bytes: Uint8Array, what: string): Record<string, unknown> {
  return parse(bytes, what);
}

function parse(bytes: Uint8Array, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch (error) {
    throw new MalformedMessageError(`The ${what} is not valid UTF-8.`, { cause: error });
  }
  let value: unknown;
  try {
    value =
      text.includes('"__proto__"') || text.includes('"prototype"')
        ? JSON.parse(text, dropDangerousKeys)
        : JSON.parse(text);
  } catch (error) {
    throw new MalformedMessageError(`The ${what} is not valid JSON.`, { cause: error });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MalformedMessageError(`The ${what} is not a JSON object.`);
  }
  const record = value as Record<string, unknown>;
  if (record["v"] !== ENVELOPE_VERSION) {
    throw new MalformedMessageError(
      `The ${what} has envelope version ${JSON.stringify(record["v"])}; this version of fastagentic reads version ${ENVELOPE_VERSION}.`,
    );
  }
  return record;
}

/** Parses any message of this envelope version (a JSON object with `v`), safely. */
export function decodeMessage(bytes: Uint8Array, what: string): Record<string, unknown> {
  return parse(bytes, what);
}

function dropDangerousKeys(key: string, value: unknown): unknown {
  if (key === "__proto__") return undefined;
  if (key === "constructor" && typeof value === "object" && value !== null && "prototype" in value) {
    return undefined;
  }
  return value;
}

function expect(ok: boolean, what: string, field: string): void {
  if (!ok) throw new MalformedMessageError(`The ${what} has a missing or invalid "${field}" field.`);
}

const isString = (v: unknown): v is string => typeof v === "string";
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isBoundedList = (v: unknown): v is string[] => isStringArray(v) && v.length <= MAX_CONTROL_LIST;

export function decodeTask(bytes: Uint8Array): TaskEnvelope {
  const what = "task message";
  const r = parse(bytes, what);
  expect(isString(r["id"]) && r["id"].length > 0, what, "id");
  expect(isString(r["type"]) && r["type"].length > 0, what, "type");
  expect("data" in r, what, "data");
  expect(isNumber(r["priority"]), what, "priority");
  expect(isNumber(r["timeoutMs"]) && (r["timeoutMs"] as number) >= 0, what, "timeoutMs");
  expect(isNumber(r["enqueuedAt"]), what, "enqueuedAt");
  expect(isString(r["queue"]), what, "queue");
  // Optional on the wire (left out when empty):
  if (r["retries"] === undefined) r["retries"] = 0;
  else expect(isNumber(r["retries"]) && (r["retries"] as number) >= 0, what, "retries");
  if (r["tags"] === undefined) r["tags"] = [];
  else expect(isStringArray(r["tags"]), what, "tags");
  if (r["metadata"] === undefined) r["metadata"] = {};
  else expect(isPlainObject(r["metadata"]), what, "metadata");
  if (r["headers"] === undefined) r["headers"] = {};
  else expect(isPlainObject(r["headers"]), what, "headers");
  if (r["replyTo"] !== undefined)
    expect(isString(r["replyTo"]) && r["replyTo"].length <= 255, what, "replyTo");
  if (r["priorAttempts"] !== undefined)
    expect(
      Number.isInteger(r["priorAttempts"]) && (r["priorAttempts"] as number) >= 0,
      what,
      "priorAttempts",
    );
  return r as unknown as TaskEnvelope;
}

const EVENT_KINDS = new Set(["queued", "started", "completed", "failed", "retrying", "cancelled", "timeout"]);

/** Decodes a task event message: one event, or a batch of them. */
export function decodeTaskEvents(bytes: Uint8Array): TaskEvent[] {
  const r = parse(bytes, "task event");
  if (r["kind"] !== "batch") return [checkTaskEvent(r)];
  expect(Array.isArray(r["events"]), "task event batch", "events");
  return (r["events"] as unknown[]).map((e) => {
    expect(isPlainObject(e) && e["v"] === ENVELOPE_VERSION, "task event batch", "events");
    return checkTaskEvent(e as Record<string, unknown>);
  });
}

function checkTaskEvent(r: Record<string, unknown>): TaskEvent {
  const what = "task event";
  expect(isString(r["kind"]) && EVENT_KINDS.has(r["kind"]), what, "kind");
  expect(isString(r["taskId"]), what, "taskId");
  expect(isNumber(r["at"]), what, "at");
  return r as unknown as TaskEvent;
}

export function decodeWorkerEvent(bytes: Uint8Array): WorkerEvent {
  const what = "worker event";
  const r = parse(bytes, what);
  expect(r["kind"] === "heartbeat" || r["kind"] === "draining" || r["kind"] === "stopped", what, "kind");
  const info = r["info"];
  expect(isPlainObject(info) && isString(info["id"]) && isNumber(info["lastHeartbeat"]), what, "info");
  if (r["held"] !== undefined) expect(isBoundedList(r["held"]), what, "held");
  return r as unknown as WorkerEvent;
}

export function decodeControl(bytes: Uint8Array): ControlCommand {
  const what = "control command";
  const r = parse(bytes, what);
  switch (r["kind"]) {
    case "cancel":
      expect(isStringArray(r["taskIds"]), what, "taskIds");
      break;
    case "scale":
      expect(isNumber(r["workers"]) && (r["workers"] as number) >= 0, what, "workers");
      break;
    case "drain":
    case "ping":
      break;
    case "resync":
      expect(
        isString(r["requestId"]) && isString(r["queue"]) && isStringArray(r["taskIds"]),
        what,
        "taskIds",
      );
      break;
    case "fence":
      expect(isBoundedList(r["workerIds"]), what, "workerIds");
      if (r["released"] !== undefined) expect(isBoundedList(r["released"]), what, "released");
      break;
    default:
      expect(false, what, "kind");
  }
  return r as unknown as ControlCommand;
}
