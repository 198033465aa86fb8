/**
 * How logical names become RabbitMQ queues and exchanges, and the arguments each is declared
 * with. Every name starts with the namespace; internal entities use ":" (which logical names
 * cannot contain), so they never collide with a work queue.
 *
 *   work queue        <ns>.<queue>                 classic v2, durable, x-max-priority, DLX → dead.<queue>
 *   dead letters      <ns>.dead.<queue>            classic v2, durable, x-max-priority
 *   delayed messages  <ns>:wait.<ms>ms             TTL <ms>, dead-letters back to the routing key
 *   delay exchange    <ns>:delay                   headers exchange, routes to the wait queues
 *   fan-out           <ns>:events                  topic exchange
 *   subscriber        <ns>:sub.<id>                exclusive, auto-delete
 *
 * With `queueType: "quorum"` (see amqp-quorum.ts) a work queue is four quorum queues, one per
 * priority level, `<ns>.<queue>:p0` … `:p3`; the wait queues are quorum queues too; the dead
 * letters stay one classic queue `<ns>.dead.<queue>` (see amqp-quorum.ts for why).
 */
import type { Options } from "amqplib";
import { ConfigError, InvalidNameError } from "../../src/errors.js";
import { assertNamespace } from "../shared-options.js";
import { DEAD_LETTER_PREFIX, deadLetterQueueOf, logicalNameProblem } from "../transport.js";
import {
  type AmqpQueueType,
  levelQueueName,
  quorumQueueArguments,
  quorumWaitArguments,
} from "./amqp-quorum.js";

/** Classic queues (one per logical queue, with per-message priority) or quorum queues (replicated). */
export type { AmqpQueueType };

/** The TaskPriority values (LOW, NORMAL, HIGH, CRITICAL): one RabbitMQ priority level each. */
export const PRIORITY_LEVELS = [0, 5, 10, 20] as const;
export const MAX_PRIORITY = PRIORITY_LEVELS.length - 1;
/** Level indices from the highest to the lowest. */
export const LEVELS_HIGH_FIRST: readonly number[] = PRIORITY_LEVELS.map((_, i) => i).reverse();

export const DEFAULT_DELAY_BUCKETS_MS = [
  100, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_200_000,
  1_800_000, 3_600_000,
] as const;

/** How long an unused wait queue lives beyond its TTL (RabbitMQ deletes it then). */
export const WAIT_QUEUE_SPARE_MS = 20 * 60_000;

/** Header names the transport keeps for itself (not shown in Delivery.headers). */
export const H_DELIVERIES = "x-fa-deliveries";
export const H_PRIORITY = "x-fa-priority";
export const H_NOT_BEFORE = "x-fa-not-before";
export const H_DELAY = "x-fa-delay";
/** How many tasks a message carries, when more than one (see amqp-packs.ts). */
export const H_PACK = "x-fa-pack";

/** RabbitMQ's limit on queue and exchange names (an AMQP short string). */
const MAX_NAME_BYTES = 255;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The most added to a logical queue name ("dead." of a dead-letter queue's own). */
const DEAD_LETTER_ROOM = DEAD_LETTER_PREFIX.length + 1;

export function validateNamespace(namespace: string): void {
  assertNamespace(namespace, "AMQP transport");
}

export class AmqpNames {
  readonly events: string;
  readonly delayExchange: string;
  /** What every subscriber queue's name starts with. */
  private readonly subscriberPrefix: string;

  /** Queues found declared with another storage version than ours (used as they are). */
  private readonly adoptedVersions = new Map<string, 1 | 2>();

  constructor(
    readonly namespace: string,
    readonly queueVersion: 1 | 2 = 2,
    readonly queueType: AmqpQueueType = "classic",
    /** Quorum queues: returns of one message (its consumer died) before the broker dead-letters it. */
    readonly deliveryLimit = 20,
  ) {
    validateNamespace(namespace);
    this.events = `${namespace}:events`;
    this.delayExchange = `${namespace}:delay`;
    this.subscriberPrefix = `${namespace}:sub.`;
  }

  private readonly queueNames = new Map<string, string>();

  /** The RabbitMQ queue of a (validated) logical queue name. */
  queue(logical: string): string {
    const known = this.queueNames.get(logical);
    if (known !== undefined) return known;
    const name = `${this.namespace}.${logical}`;
    if (Buffer.byteLength(name) + DEAD_LETTER_ROOM > MAX_NAME_BYTES) {
      throw new InvalidNameError(
        `The queue name "${logical}" is too long for RabbitMQ with namespace "${this.namespace}": ` +
          `names are limited to ${MAX_NAME_BYTES} bytes, including the namespace and the "${DEAD_LETTER_PREFIX}." of its dead-letter queue.`,
      );
    }
    if (this.queueNames.size >= 10_000) this.queueNames.clear();
    this.queueNames.set(logical, name);
    return name;
  }

  /**
   * The RabbitMQ queues of a logical queue: itself on classic queues; on quorum queues one per
   * priority level, highest first (a dead-letter queue is one queue: its order is not by priority).
   */
  physicalQueues(logical: string): readonly string[] {
    const name = this.queue(logical);
    if (this.queueType === "classic" || this.isDeadLetterQueue(logical)) return [name];
    return LEVELS_HIGH_FIRST.map((level) => levelQueueName(name, level));
  }

  /** Where a message of `level` (its `priority` property) to a logical queue is published. */
  routingKey(logical: string, level: number | undefined): string {
    const name = this.queue(logical);
    if (this.queueType === "classic" || this.isDeadLetterQueue(logical)) return name;
    return levelQueueName(name, Math.min(MAX_PRIORITY, Math.max(0, Math.floor(level ?? 0))));
  }

  /** Whether a logical queue is a dead-letter queue (declared without a dead-letter exchange). */
  isDeadLetterQueue(logical: string): boolean {
    return logical.startsWith(`${DEAD_LETTER_PREFIX}.`);
  }

  waitQueue(bucketMs: number): string {
    return `${this.namespace}:wait.${bucketMs}ms`;
  }

  /** The queue of a subscription (`id`: a UUID), also its `Subscription.inbox`. */
  subscriberQueue(id: string): string {
    return this.subscriberPrefix + id;
  }

  /** Whether `name` can be a subscriber queue of this namespace: an inbox it may send to directly. */
  isSubscriberQueue(name: string): boolean {
    const prefix = this.subscriberPrefix;
    return (
      typeof name === "string" &&
      name.length === prefix.length + 36 &&
      name.startsWith(prefix) &&
      UUID.test(name.slice(prefix.length))
    );
  }

  /** The declare options of a logical queue: the same for every caller, so declarations never conflict. */
  queueOptions(logical: string): Options.AssertQueue {
    // Dead-letter queues stay classic (see amqp-quorum.ts).
    if (this.queueType === "quorum" && !this.isDeadLetterQueue(logical)) {
      const dead = this.queue(deadLetterQueueOf(logical));
      return { durable: true, arguments: quorumQueueArguments(dead, this.deliveryLimit) };
    }
    const args: Record<string, unknown> = { "x-max-priority": MAX_PRIORITY };
    // Version 1 is what a queue declared without the argument has (before 3.12).
    const version = this.adoptedVersions.get(logical) ?? this.queueVersion;
    if (version === 2) args["x-queue-version"] = 2;
    if (!this.isDeadLetterQueue(logical)) {
      args["x-dead-letter-exchange"] = "";
      args["x-dead-letter-routing-key"] = this.queue(deadLetterQueueOf(logical));
    }
    return { durable: true, arguments: args };
  }

  /** Declares `logical` with the storage version it already has; false if it was adopted already. */
  adoptQueueVersion(logical: string, version: 1 | 2): boolean {
    if (this.adoptedVersions.has(logical)) return false;
    this.adoptedVersions.set(logical, version);
    return true;
  }

  waitQueueOptions(bucketMs: number): Options.AssertQueue {
    if (this.queueType === "quorum") {
      return { durable: true, arguments: quorumWaitArguments(bucketMs, bucketMs + WAIT_QUEUE_SPARE_MS) };
    }
    return {
      durable: true,
      arguments: {
        "x-message-ttl": bucketMs,
        // No routing key: an expired message goes back under the key it was published with (its work queue).
        "x-dead-letter-exchange": "",
        "x-expires": bucketMs + WAIT_QUEUE_SPARE_MS,
      },
    };
  }
}

/** The smallest bucket at least `delayMs` long (or the largest one). */
export function delayBucket(delayMs: number, buckets: readonly number[]): number {
  for (const bucket of buckets) if (bucket >= delayMs) return bucket;
  return buckets[buckets.length - 1] as number;
}

/** A topic-exchange binding pattern for a subject: a trailing `.>` needs at least one more word. */
export function bindingPattern(subject: string): string {
  return subject.endsWith(".>") ? `${subject.slice(0, -2)}.*.#` : subject;
}
