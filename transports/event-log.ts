/**
 * The event-log contract: durable publish/subscribe between services, a broker capability of its
 * own beside the work queues (`Transport.eventLog?()`). The EventBus (src/events/) sits on top of
 * it; one implementation per broker (memory, NATS JetStream, RabbitMQ) passes the one conformance
 * suite in test/conformance/event-log-conformance.ts.
 *
 * - `append` stores an event once the broker confirmed it; a re-sent `id` within the
 *   de-duplication window is stored once (where the broker can tell: see each implementation).
 * - `notify` sends an event without storing or confirming it (at most once): only non-durable
 *   groups get it.
 * - A group (`group` + `pattern`) receives every matching event appended after it was created
 *   (or from `from`); its members compete; a delivery stays unsettled until `ack`, `release` or
 *   `deadLetter`; a member that leaves or dies gives its unsettled deliveries back to the group.
 * - `ordered`: while a delivery of one key is unsettled, no member receives a later event of that
 *   key, and one member receives a key's events in publish order.
 * - Patterns: dot-separated tokens; `*` matches one token, a final `>` one or more (NATS style).
 */
import { ConfigError, InvalidNameError } from "../src/errors.js";
import { showValue } from "../src/limits.js";
import { type Bytes, logicalNameProblem } from "./transport.js";

export interface EventRecord {
  /** The event type: a logical name (dot-separated tokens, no wildcards). */
  readonly type: string;
  /** Unique per event; a re-send with the same id is stored once within the de-duplication window. */
  readonly id: string;
  /** Ordering key: events of one key go to ordered groups one at a time, in publish order. */
  readonly key?: string;
  /** The encoded event (the log does not read it). */
  readonly body: Bytes;
}

/** Where a new group starts: at the next event, the oldest retained one, a time (epoch ms) or a sequence. */
export type EventStart = "new" | "all" | { time: number } | { sequence: number };

export interface GroupSpec {
  /** Group name: one token of letters, digits, "_" or "-". */
  readonly group: string;
  readonly pattern: string;
  /** Applies when the group is created; an existing durable group goes on where it was. */
  readonly from: EventStart;
  readonly ordered: boolean;
  /** False: at most once, live events only (no replay, nothing kept while no member is there). */
  readonly durable: boolean;
  /** Unsettled deliveries this member holds at most. */
  readonly concurrency: number;
}

export interface EventDelivery {
  readonly type: string;
  readonly body: Bytes;
  /** Position in the log where the broker tells it (memory, NATS, a RabbitMQ replay); else undefined. */
  readonly sequence: number | undefined;
  /** 1 on the first delivery to the group; more after a member died or released it. */
  readonly deliveryCount: number;
  /** Handled: never delivered to this group again. */
  ack(): void;
  /** Not handled (the member is stopping): deliver it again, to any member. */
  release(): void;
  /** Keeps it from being redelivered while a handler still runs (extends the broker's deadline). */
  inProgress(): void;
  /** Stores it among the group's dead letters with the reason, then settles it. */
  deadLetter(reason: string): Promise<void>;
}

export interface GroupMember {
  /** Stops receiving; unsettled deliveries go back to the group (a non-durable group ends with its last member). */
  close(): Promise<void>;
}

/** What the log knows of a group, for dashboards (counts the broker cannot tell are undefined). */
export interface EventGroupInfo {
  group: string;
  pattern: string;
  ordered: boolean;
  durable: boolean;
  /** Events waiting for the group (its lag). */
  pending: number | undefined;
  /** Delivered to a member, not settled yet. */
  inFlight: number | undefined;
  deadLetters: number | undefined;
  /** Members connected now. */
  members: number | undefined;
}

export interface DeadEvent {
  group: string;
  pattern: string;
  type: string;
  body: Bytes;
  reason: string;
  /** When it was dead-lettered (epoch ms). */
  time: number;
}

export interface EventLog {
  /** Resolves once the broker stored the event (publisher confirm, JetStream ack). */
  append(record: EventRecord): Promise<void>;
  /** Sends without storing or waiting (at most once): non-durable groups only. */
  notify(record: EventRecord): Promise<void>;
  /** Joins (creating it if needed) a group; `onEvent` gets each delivery. */
  join(spec: GroupSpec, onEvent: (delivery: EventDelivery) => void): Promise<GroupMember>;
  /** The durable groups on the broker (in this namespace), with their lag where known. */
  groups(): Promise<EventGroupInfo[]>;
  /** The most recent dead letters of a group (up to `limit`, oldest first). */
  deadLetters(group: string, pattern: string, limit: number): Promise<DeadEvent[]>;
  /** Deletes a durable group, its position and its dead letters. False if there was none. */
  deleteGroup(group: string, pattern: string): Promise<boolean>;
}

/** Retention of the event log: what a group that was down can still receive, and replays read. */
export interface EventLogOptions {
  /** Events older than this are dropped. Default 7 days. */
  maxAgeMs?: number;
  /** The log keeps at most this many bytes (the oldest go first). Default 1 GiB (memory: not used). */
  maxBytes?: number;
  /** The log keeps at most this many events. Default: unlimited on brokers, 100,000 in memory. */
  maxEvents?: number;
  /** A re-sent id within this window is stored once. Default 2 minutes. */
  duplicateWindowMs?: number;
  /** Each group keeps at most this many dead letters (the oldest go first). Default 10,000. */
  maxDeadLetters?: number;
}

export interface ResolvedEventLogOptions {
  maxAgeMs: number;
  maxBytes: number;
  maxEvents: number;
  duplicateWindowMs: number;
  maxDeadLetters: number;
}

export function resolveEventLogOptions(
  options: EventLogOptions | undefined,
  defaultMaxEvents: number,
): ResolvedEventLogOptions {
  const o = options ?? {};
  const resolved = {
    maxAgeMs: o.maxAgeMs ?? 7 * 24 * 3600_000,
    maxBytes: o.maxBytes ?? 1024 ** 3,
    maxEvents: o.maxEvents ?? defaultMaxEvents,
    duplicateWindowMs: o.duplicateWindowMs ?? 120_000,
    maxDeadLetters: o.maxDeadLetters ?? 10_000,
  };
  for (const [key, value] of Object.entries(resolved)) {
    if (!Number.isSafeInteger(value) || value < (key === "maxEvents" ? -1 : 1)) {
      throw new ConfigError(
        `events.${key} must be a positive integer${key === "maxEvents" ? " (or -1: unlimited)" : ""}, got ${showValue(value)}.`,
      );
    }
  }
  return resolved;
}

/** Number of partitions of a key on brokers that order by partition (NATS): part of the wire format. */
export const EVENT_PARTITIONS = 8;

const GROUP = /^[A-Za-z0-9_-]{1,64}$/;

const knownTypes = new Set<string>();

/** Throws InvalidNameError unless `type` is a valid event type (no wildcards). */
export function assertEventType(type: unknown): asserts type is string {
  if (typeof type === "string" && knownTypes.has(type)) return;
  const problem = typeof type === "string" ? logicalNameProblem(type) : "it is not a string";
  if (problem !== undefined) {
    throw new InvalidNameError(
      `Invalid event type ${showValue(type)}: ${problem}. Event types are dot-separated parts of ` +
        'letters, digits, "_" and "-" (e.g. "order.created"); "*" and ">" are for subscription patterns.',
    );
  }
  if (knownTypes.size >= 10_000) knownTypes.clear();
  knownTypes.add(type as string);
}

/** Throws InvalidNameError unless `pattern` is a valid subscription pattern. */
export function assertEventPattern(pattern: unknown): asserts pattern is string {
  let problem: string | undefined;
  if (typeof pattern !== "string") problem = "it is not a string";
  else {
    const tokens = pattern.split(".");
    const concrete = tokens.map((t, i) => (t === "*" || (t === ">" && i === tokens.length - 1) ? "x" : t));
    problem = logicalNameProblem(concrete.join("."));
  }
  if (problem !== undefined) {
    throw new InvalidNameError(
      `Invalid event pattern ${showValue(pattern)}: ${problem}. A pattern is an event type whose ` +
        'parts may be "*" (one part) and whose last part may be ">" (one or more parts), e.g. "order.*".',
    );
  }
}

/** Throws InvalidNameError unless `group` is a valid group name. */
export function assertGroupName(group: unknown): asserts group is string {
  if (typeof group !== "string" || !GROUP.test(group)) {
    throw new InvalidNameError(
      `Invalid event group ${showValue(group)}: use 1-64 letters, digits, "_" or "-" (e.g. "billing").`,
    );
  }
}

/** Whether an event type matches a pattern (`*` one token, final `>` one or more). */
export function patternMatches(pattern: string, type: string): boolean {
  if (pattern === type) return true;
  const p = pattern.split(".");
  const t = type.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === ">") return t.length > i;
    if (i >= t.length) return false;
    if (token !== "*" && token !== t[i]) return false;
  }
  return p.length === t.length;
}

/** The partition of an event: of its key when it has one (so a key stays in one), else of its id. */
export function partitionOf(record: Pick<EventRecord, "id" | "key">): number {
  const text = record.key ?? record.id;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % EVENT_PARTITIONS;
}

/** FNV-1a of a text as 8 hex digits: a short, stable name part for a pattern. */
export function patternFingerprint(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}
