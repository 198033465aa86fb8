/**
 * One received message, handed to the consumer's handler. Settling goes through its consumer,
 * which knows whether the channel it arrived on is still open: settling a delivery of a dead
 * channel is a no-op (the broker has already put the message back), never a stale delivery tag.
 */
import type { Channel, ConsumeMessage } from "amqplib";
import type { Bytes, Delivery } from "../transport.js";
import type { MessageMeta } from "./amqp-messages.js";

/** Where a settled message goes besides away: back to its queue (maybe later), or to its dead letters. */
export type Settlement =
  | { kind: "ack" }
  | { kind: "retry"; delayMs: number }
  | { kind: "dead"; reason: string };

export interface DeliverySettler {
  settle(delivery: AmqpDelivery, how: Settlement): Promise<void>;
}

const ACK: Settlement = Object.freeze({ kind: "ack" });

/** The broker message of a pack (several tasks) and how many of its tasks are not settled yet. */
export interface PackRecord {
  readonly message: ConsumeMessage;
  left: number;
  /** A task of it could not be sent on (nack, dead letter): the message goes back to its queue. */
  failed: boolean;
}

/** Dead-letter reasons travel in a header; AMQP header tables are limited to 64 KiB. */
const MAX_REASON_CHARS = 4096;

export class AmqpDelivery implements Delivery {
  readonly body: Bytes;
  readonly deliveryCount: number;
  readonly priority: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Set once ack/nack/deadLetter was called (later calls are no-ops). */
  settled = false;

  constructor(
    private readonly settler: DeliverySettler,
    readonly channel: Channel,
    readonly message: ConsumeMessage,
    readonly queue: string,
    meta: MessageMeta,
    /** The pack this task came in, if it shared its message with others. */
    readonly pack?: PackRecord,
  ) {
    this.body = message.content;
    this.deliveryCount = meta.deliveries + 1;
    this.priority = meta.priority;
    this.headers = meta.headers;
  }

  ack(): Promise<void> {
    return this.settler.settle(this, ACK);
  }

  nack(options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = options.delayMs ?? 0;
    return this.settler.settle(this, {
      kind: "retry",
      delayMs: Number.isFinite(delayMs) ? Math.max(0, delayMs) : 0,
    });
  }

  /** RabbitMQ has no ack deadline to extend (see the consumer timeout in the README). */
  inProgress(): Promise<void> {
    return Promise.resolve();
  }

  deadLetter(reason: string): Promise<void> {
    const text = String(reason);
    return this.settler.settle(this, {
      kind: "dead",
      reason: text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS)}…` : text,
    });
  }
}
