/**
 * Logical names of the queues and subjects the library uses. Transports add their namespace
 * prefix and map the names onto their broker; see transports/transport.ts for the token rules.
 */
import { assertLogicalName } from "../transports/transport.js";
import { InvalidNameError } from "./errors.js";
import { showValue } from "./limits.js";

const PART = /^[A-Za-z0-9_-]{1,64}$/;

function assertPart(value: unknown, what: string): asserts value is string {
  if (typeof value !== "string" || !PART.test(value)) {
    throw new InvalidNameError(
      `Invalid ${what} ${showValue(value)}: use 1-64 letters, digits, "_" or "-". ` +
        "It becomes part of a broker subject or queue name, where dots, spaces and wildcards " +
        "(*, >, #) have a meaning of their own.",
    );
  }
}

export function assertTaskType(type: unknown): asserts type is string {
  assertPart(type, "task type");
}

export function assertTag(tag: unknown): asserts tag is string {
  assertPart(tag, "tag");
}

export function assertQueueName(name: unknown): asserts name is string {
  assertPart(name, "queue name");
}

/** Tags, validated, de-duplicated and sorted: the canonical form used in queue names. */
export function normalizeTags(tags: readonly string[] | undefined): string[] {
  if (tags === undefined) return [];
  if (!Array.isArray(tags)) {
    throw new InvalidNameError(`tags must be an array of strings, got ${showValue(tags)}.`);
  }
  for (const tag of tags) assertTag(tag);
  return [...new Set(tags)].sort();
}

/**
 * The routing layout's version, the first token of every work queue name. Layout 1 had one queue
 * per task type and tag subset (`q.<queue>.<type>[.<tags>]`); layout 2 has lanes (below). A new
 * layout takes new names, so a broker keeps the old durable queues as they were (RabbitMQ refuses
 * to redeclare a queue with other arguments) and an upgrade drains them (README "Upgrading").
 */
export const LAYOUT = "w2";
const LEGACY_PREFIX = "q.";

/**
 * The shared lane of a logical queue, `w2.<queue>`: every task submitted to the queue goes there,
 * whatever its type and tags; every worker of the queue consumes it and runs what it serves.
 */
export function laneOf(queue: string): string {
  const name = `${LAYOUT}.${queue}`;
  assertLogicalName(name, "work queue name");
  return name;
}

/** A short fingerprint of a worker profile (its types and tags): 16 hex digits (two FNV-1a hashes). */
export function profileId(types: readonly string[], tags: readonly string[]): string {
  const text = `${[...types].sort().join(",")}|${[...tags].sort().join(",")}`;
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x5bd1e995) >>> 0;
    b = (b ^ (b >>> 15)) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}

/**
 * The lane of one worker profile, `w2.<queue>.p<id>`: a task taken from the shared lane by a
 * worker that does not serve its type or tags is moved here, to the workers that do. One per
 * profile (the deployment's variety of workers), never one per task type.
 */
export function profileLaneOf(queue: string, types: readonly string[], tags: readonly string[]): string {
  const name = `${LAYOUT}.${queue}.p${profileId(types, tags)}`;
  assertLogicalName(name, "work queue name");
  return name;
}

/**
 * The work queue a task of `type` with `tags` is submitted to: the queue's shared lane (layout 2
 * no longer routes by name; the type and tags are checked, and travel in the task).
 */
export function workQueueName(queue: string, type: string, tags: readonly string[]): string {
  assertTaskType(type);
  for (const tag of tags) assertTag(tag);
  return laneOf(queue);
}

/** Whether `name` is a work queue of logical queue `queue`: a lane, or a layout 1 queue left by an upgrade. */
export function isWorkQueueOf(queue: string, name: string): boolean {
  const lane = `${LAYOUT}.${queue}`;
  return name === lane || name.startsWith(`${lane}.`) || name.startsWith(`${LEGACY_PREFIX}${queue}.`);
}

export const MAX_TAGS_PER_WORKER = 6;

/**
 * The work queues a worker with these types and tags consumes: its queue's shared lane and its
 * profile's lane. Two, however many types it serves (none when it serves no type).
 */
export function queuesServedBy(queue: string, types: readonly string[], tags: readonly string[]): string[] {
  if (tags.length > MAX_TAGS_PER_WORKER) {
    throw new InvalidNameError(
      `A worker carries ${tags.length} tags; at most ${MAX_TAGS_PER_WORKER} are supported (every ` +
        "task's tags are matched against them). Merge related tags into one.",
    );
  }
  if (types.length === 0) return [];
  return [laneOf(queue), profileLaneOf(queue, types, tags)];
}

/** Task event subjects of the queues seen so far (one string per queue, not one per event). */
const eventSubjects = new Map<string, string>();

export const subjects = {
  taskEvents(queue: string): string {
    let subject = eventSubjects.get(queue);
    if (subject === undefined) {
      subject = `ev.${queue}.task`;
      if (eventSubjects.size < 10_000) eventSubjects.set(queue, subject);
    }
    return subject;
  },
  workerEvents: "ev.workers",
  control: "ctl.all",
};
