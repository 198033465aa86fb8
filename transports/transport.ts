/**
 * The transport contract. Everything above it (queues, workers, coordinator) is transport-blind;
 * each adapter (memory, NATS, AMQP) implements exactly this and passes the one conformance suite
 * in test/conformance.
 *
 * Names: queue and subject names handed to a transport are logical, dot-separated tokens of
 * `[A-Za-z0-9_-]` (see `assertLogicalName`). An adapter prefixes its namespace and maps them onto
 * what its broker allows.
 *
 * Bodies: a transport may keep the bytes it is given (the in-memory one does, without copying):
 * callers must not modify a body after enqueue() or publish().
 *
 * Delivery: work queues are at-least-once with competing consumers. A delivery stays unsettled
 * (counted against the consumer's concurrency) until `ack`, `nack` or `deadLetter` is called.
 * When a consumer stops, or its connection dies, its unsettled deliveries go back to the queue.
 */

import { InvalidNameError } from "../src/errors.js";
import { showValue } from "../src/limits.js";
import type { DeadLetters } from "./dead-letters.js";
import type { DeliveryRelease } from "./delivery-release.js";
import type { EntityMailbox } from "./entity-mailbox.js";
import type { EventLog } from "./event-log.js";
import type { FinishedRecord } from "./finished-record.js";
import type { StateStore } from "./state-store.js";

export type Bytes = Uint8Array;

export interface EnqueueOptions {
  /** TaskPriority value (0..255): higher is delivered first. Adapters may map it onto fewer levels. */
  priority: number;
  /** Deliver no earlier than this many milliseconds from now. */
  delayMs?: number;
  /** Broker-side de-duplication key: a re-sent publish with the same id is not queued twice. */
  dedupId?: string;
  headers?: Record<string, string>;
}

export interface Delivery {
  readonly queue: string;
  readonly body: Bytes;
  /** 1 on the first delivery; counts every delivery of this message, including after `nack`. */
  readonly deliveryCount: number;
  readonly priority: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Done: remove the message. */
  ack(): Promise<void>;
  /** Not done: deliver it again, after `delayMs` if given, without blocking the messages behind it. */
  nack(options?: { delayMs?: number }): Promise<void>;
  /** Still working: extends the broker's redelivery deadline for long tasks. */
  inProgress(): Promise<void>;
  /** Moves the message to the queue's dead-letter queue (`deadLetterQueueOf(queue)`) with a reason. */
  deadLetter(reason: string): Promise<void>;
}

export type DeliveryHandler = (delivery: Delivery) => void;

export interface ConsumeOptions {
  /** Maximum unsettled deliveries at once (the broker prefetch). 0 pauses the consumer. */
  concurrency: number;
}

export interface Consumer {
  /** Changes the number of unsettled deliveries allowed; 0 pauses. Takes effect for new deliveries. */
  setConcurrency(concurrency: number): void;
  /** Stops receiving. Unsettled deliveries return to their queue (and are redelivered to others). */
  stop(): Promise<void>;
}

export interface FanoutMessage {
  readonly subject: string;
  readonly body: Bytes;
}

export interface Subscription {
  unsubscribe(): Promise<void>;
  /**
   * An address that reaches this subscription alone, for `publish(subject, body, { inbox })`:
   * set where the broker has a cheaper way to one subscriber than its fan-out (AMQP: the
   * subscription's own queue, reached without the topic exchange). Undefined elsewhere.
   */
  readonly inbox?: string;
}

export interface PublishOptions {
  /**
   * Deliver to this subscription only (a `Subscription.inbox` of a subscriber of `subject`), not
   * to every subscriber: a reply to the one client waiting for it. Still at most once: gone with
   * its subscription. A transport without inboxes, or an address it does not recognise as one
   * of its inboxes, fans the message out on `subject` as usual, so subscribers must expect messages
   * meant for others either way.
   */
  inbox?: string;
}

export type TransportState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

export interface TransportStatusEvent {
  state: TransportState;
  error?: Error;
}

export interface Transport {
  /** "memory" | "nats" | "amqp" (or a third party's). */
  readonly kind: string;
  /** The largest message body this transport accepts; the codec refuses bigger ones before sending. */
  readonly maxPayloadBytes: number;
  readonly state: TransportState;
  /**
   * How long the broker waits for a settlement before redelivering (JetStream AckWait); workers
   * call `inProgress()` on long tasks well within it. Undefined: deliveries never expire.
   */
  readonly ackDeadlineMs?: number;
  /**
   * True when fan-out messages always reach the subscribers there were when they were published
   * (an in-process transport): senders then need not keep recent outcomes for clients that missed
   * them. Broker transports leave it undefined (at most once: a reconnecting client can miss some).
   */
  readonly reliableFanout?: boolean;
  /**
   * True when a delivery count of 1 always means the message was never delivered before (an
   * in-process transport: nothing loses its deliveries' state). Workers then need not remember
   * the tasks they started to spot re-runs (src/cluster/started-runs.ts), a 100,000-entry map
   * updated per task. Broker transports leave it undefined.
   */
  readonly exactDeliveryCounts?: boolean;

  /** Idempotent; concurrent calls share one connection attempt. */
  connect(): Promise<void>;
  /** Idempotent. Stops consumers (their unsettled deliveries return) and subscriptions. */
  close(): Promise<void>;
  /** Listens to connection state changes; returns an unsubscribe function. */
  onStatus(listener: (event: TransportStatusEvent) => void): () => void;

  /** Resolves once the broker has the message (a publisher confirm / JetStream ack). */
  enqueue(queue: string, body: Bytes, options: EnqueueOptions): Promise<void>;
  /**
   * Competing consumer over one or more queues. Higher priority first across all of them (as far
   * as the broker allows: exact on memory and NATS, per queue on AMQP), first in first out within.
   */
  consume(queues: readonly string[], onDelivery: DeliveryHandler, options: ConsumeOptions): Promise<Consumer>;
  /** Messages waiting in the queue (ready or delayed), not counting unsettled deliveries. */
  depth(queue: string): Promise<number>;

  /**
   * Fan-out, at-most-once: every current subscriber of a matching subject gets a copy (or, with
   * `options.inbox`, the one subscription it names).
   */
  publish(subject: string, body: Bytes, options?: PublishOptions): Promise<void>;
  /** `subject` may end in `.>` to match every subject under that prefix. */
  subscribe(subject: string, onMessage: (message: FanoutMessage) => void): Promise<Subscription>;

  /** Entities: partitioned mailboxes with one holder per partition (transports/entity-mailbox.ts). */
  entityMailbox?(): EntityMailbox;
  /** Entities: the state store that goes with this transport by default (transports/state-store.ts). */
  stateStore?(): StateStore;
  /** The durable event log (transports/event-log.ts), for the EventBus; one per transport. */
  eventLog?(): EventLog;
  /** The dead letters of the work queues, to list, inspect, retry and purge (transports/dead-letters.ts). */
  deadLetters?(): DeadLetters;
  /** Messages waiting in `queue` by priority value, where the broker tells (for dashboards). */
  depthByPriority?(queue: string): Promise<Record<number, number>>;
  /** Releasing a dead worker's deliveries from another process, where the broker needs it (delivery-release.ts). */
  deliveryRelease?(): DeliveryRelease | undefined;
  /** The record of finished tasks, where the broker can keep one (finished-record.ts); undefined: none. */
  finishedRecord?(): FinishedRecord | undefined;
}

/**
 * The first part of every dead-letter queue's name. A prefix, not a suffix: work queues all start
 * with "q." and end in the user's names (type, tags), so no choice of names can make a work queue
 * that is another queue's dead-letter queue (a tag "dead" once did: `q.default.echo` + `.dead`).
 */
export const DEAD_LETTER_PREFIX = "dead";
export const DEAD_LETTER_REASON_HEADER = "x-fa-dead-reason";

/** The queue a queue's dead letters go to; consume it or read its depth like any queue. */
export function deadLetterQueueOf(queue: string): string {
  return `${DEAD_LETTER_PREFIX}.${queue}`;
}

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** Throws a TypeError naming the problem when `name` is not a valid logical queue/subject name. */
export function logicalNameProblem(name: string, allowWildcard = false): string | undefined {
  if (typeof name !== "string" || name.length === 0) return "it is empty";
  if (name.length > 200) return `it is ${name.length} characters long (at most 200)`;
  const tokens = name.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (allowWildcard && i === tokens.length - 1 && token === ">") continue;
    if (!TOKEN.test(token)) {
      return `its part "${token}" is not 1-64 characters of letters, digits, "_" or "-"`;
    }
  }
  return undefined;
}

/** Maps a TaskPriority (0..255) onto `levels` levels (0 = lowest). Used by adapters with fewer levels. */
export function priorityLevel(priority: number, levels: readonly number[]): number {
  let level = 0;
  for (let i = 0; i < levels.length; i++) if (priority >= (levels[i] as number)) level = i;
  return level;
}

const knownGood = new Set<string>();

/** Throws InvalidNameError when `name` cannot be a queue or subject name on every transport. */
export function assertLogicalName(name: string, what: string, allowWildcard = false): void {
  if (knownGood.has(name)) return;
  const problem = logicalNameProblem(name, allowWildcard);
  if (problem === undefined && !name.endsWith(">")) {
    if (knownGood.size > 10_000) knownGood.clear();
    knownGood.add(name);
  }
  if (problem !== undefined) {
    throw new InvalidNameError(
      `Invalid ${what} ${showValue(name)}: ${problem}. Names become broker subjects and queue names, ` +
        'so use dot-separated parts of letters, digits, "_" and "-" (e.g. "orders.resize-image").',
    );
  }
}
