/**
 * The dead-letters contract: what a person (or a tool) can do with the messages a work queue gave
 * up on, a broker capability of its own beside the work queues (`Transport.deadLetters?()`). One
 * implementation per broker (memory, NATS JetStream, RabbitMQ) passes the one conformance suite in
 * test/conformance/dead-letters-conformance.ts. The contract is defined by behaviour, not by
 * layout: where a transport keeps the dead letters of `queue` (today `deadLetterQueueOf(queue)`)
 * may change under it.
 *
 * - `list` pages through the dead letters of one work queue, oldest first; `cursor` continues
 *   where the last page ended (a letter removed meanwhile is skipped, never repeated).
 * - `get`, `retry`, `delete` address one letter by the `id` that `list` gave: stable for as long
 *   as the letter stays dead.
 * - `retry` puts the letter back on its work queue as a new message (the broker's delivery count
 *   starts again at 1: its attempts are reset), with the same body (or `options.body`), priority
 *   and headers (not the dead-letter reason), then removes the dead letter. It resolves true once
 *   the broker has the new message; a retried message that fails again is dead-lettered again
 *   like any other. A retry that fails half-way leaves the letter dead (it may then also be
 *   queued: at least once, never lost).
 * - `purge` removes every dead letter of the queue and says how many.
 */
import { ValidationError } from "../src/errors.js";
import { type Bytes, deadLetterQueueOf } from "./transport.js";

export interface DeadLetter {
  /** Addresses this letter within its queue's dead letters (opaque; no two letters share one). */
  readonly id: string;
  /** The work queue it was dead-lettered from. */
  readonly queue: string;
  readonly body: Bytes;
  /** Its priority (a TaskPriority value, or the broker's level of it). */
  readonly priority: number;
  /** The user's headers it carried (without the dead-letter reason). */
  readonly headers: Readonly<Record<string, string>>;
  /** Why it was dead-lettered. */
  readonly reason: string;
  /** Deliveries it had when it was dead-lettered, where the broker tells (else undefined). */
  readonly deliveries: number | undefined;
  /** When it was dead-lettered (epoch ms), where the broker tells (else undefined). */
  readonly deadAt: number | undefined;
}

export interface DeadLetterPage {
  letters: DeadLetter[];
  /** Pass it back as `cursor` for the next page; undefined when this page is the last. */
  next: string | undefined;
}

export interface ListDeadLettersOptions {
  /** Letters per page: 1..MAX_DEAD_LETTER_PAGE. Default 50. */
  limit?: number;
  /** Where to go on: the `next` of the previous page. */
  cursor?: string;
}

export interface RetryDeadLetterOptions {
  /** The body to send instead of the dead one (e.g. re-encoded with a new reply address). */
  body?: Bytes;
}

export interface DeadLetters {
  /** A page of the dead letters of the work queue `queue`, oldest first. */
  list(queue: string, options?: ListDeadLettersOptions): Promise<DeadLetterPage>;
  /** How many dead letters `queue` holds. */
  count(queue: string): Promise<number>;
  /** One letter, or undefined when there is none with this id (any more). */
  get(queue: string, id: string): Promise<DeadLetter | undefined>;
  /** Back on its work queue, attempts reset; false when there is no such letter (any more). */
  retry(queue: string, id: string, options?: RetryDeadLetterOptions): Promise<boolean>;
  /** Removes one letter; false when there is no such letter (any more). */
  delete(queue: string, id: string): Promise<boolean>;
  /** Removes every dead letter of `queue`; resolves with how many there were. */
  purge(queue: string): Promise<number>;
  /**
   * Work queues that have dead letters, where the broker can list them (memory, NATS); undefined
   * where it cannot (RabbitMQ over AMQP 0-9-1 cannot list queues): callers then ask for the queues
   * they know of.
   */
  queues(): Promise<string[] | undefined>;
}

export const DEFAULT_DEAD_LETTER_PAGE = 50;
export const MAX_DEAD_LETTER_PAGE = 500;

/** Header a transport stamps on a dead letter: deliveries it had (a decimal string). */
export const DEAD_LETTER_DELIVERIES_HEADER = "x-fa-dead-deliveries";
/** Header a transport stamps on a dead letter: when it died (epoch ms, a decimal string). */
export const DEAD_LETTER_AT_HEADER = "x-fa-dead-at";

/** The page size asked for, checked: a ValidationError names what is wrong. */
export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_DEAD_LETTER_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_DEAD_LETTER_PAGE) {
    throw new ValidationError(
      `Invalid page size ${String(limit)}: ask for 1 to ${MAX_DEAD_LETTER_PAGE} dead letters at a time.`,
    );
  }
  return limit;
}

/** A cursor or id that is a sequence number (memory, NATS); undefined when it is not one. */
export function sequenceOf(text: string | undefined): number | undefined {
  if (typeof text !== "string" || !/^[1-9][0-9]{0,15}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Reads the deliveries/time stamps a transport put in a dead letter's headers. */
export function stampsOf(headers: Readonly<Record<string, string>>): {
  deliveries: number | undefined;
  deadAt: number | undefined;
} {
  const d = Number(headers[DEAD_LETTER_DELIVERIES_HEADER]);
  const at = Number(headers[DEAD_LETTER_AT_HEADER]);
  return {
    deliveries: Number.isSafeInteger(d) && d >= 0 ? d : undefined,
    deadAt: Number.isSafeInteger(at) && at > 0 ? at : undefined,
  };
}

/** The headers a dead letter shows (the transport's own stamps and the reason left out). */
export function userHeadersOf(
  headers: Readonly<Record<string, string>>,
  reasonHeader: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k === reasonHeader || k === DEAD_LETTER_DELIVERIES_HEADER || k === DEAD_LETTER_AT_HEADER) continue;
    out[k] = v;
  }
  return out;
}

const PROBE = "Q";
const [DLQ_PREFIX, DLQ_SUFFIX] = (() => {
  const probe = deadLetterQueueOf(PROBE);
  const at = probe.indexOf(PROBE);
  return [probe.slice(0, at), probe.slice(at + PROBE.length)];
})();

/**
 * The work queue whose dead letters the queue `name` holds, or undefined when `name` is not a
 * dead-letter queue. Derived from `deadLetterQueueOf`, so it follows whatever layout that has.
 */
export function workQueueOfDeadLetters(name: string): string | undefined {
  if (name.length <= DLQ_PREFIX.length + DLQ_SUFFIX.length) return undefined;
  if (!name.startsWith(DLQ_PREFIX) || !name.endsWith(DLQ_SUFFIX)) return undefined;
  return name.slice(DLQ_PREFIX.length, name.length - DLQ_SUFFIX.length);
}
