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

/** Work queue of one task type with one tag set: `q.<queue>.<type>[.<tag>…]`. */
export function workQueueName(queue: string, type: string, tags: readonly string[]): string {
  const name = tags.length === 0 ? `q.${queue}.${type}` : `q.${queue}.${type}.${tags.join(".")}`;
  assertLogicalName(name, "work queue name");
  return name;
}

export const MAX_TAGS_PER_WORKER = 6;

/** Every queue a worker with these types and tags serves: each type × each subset of its tags. */
export function queuesServedBy(queue: string, types: readonly string[], tags: readonly string[]): string[] {
  if (tags.length > MAX_TAGS_PER_WORKER) {
    throw new InvalidNameError(
      `A worker carries ${tags.length} tags; at most ${MAX_TAGS_PER_WORKER} are supported, because it ` +
        "listens on one queue per subset of its tags. Merge related tags into one.",
    );
  }
  const subsets: string[][] = [];
  for (let mask = 0; mask < 1 << tags.length; mask++) {
    subsets.push(tags.filter((_, i) => mask & (1 << i)));
  }
  const names: string[] = [];
  for (const type of types) for (const subset of subsets) names.push(workQueueName(queue, type, subset));
  return names;
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
