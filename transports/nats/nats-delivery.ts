/**
 * One JetStream message handed to a consumer's handler. Settling it answers on the message's ack
 * subject with a plain publish (no round trip): +ACK, -NAK (with a delay), +WPI (in progress). The
 * answer goes through the transport's outbox, so it shares a socket write with the task event
 * published just before it.
 */
import type { Msg } from "@nats-io/transport-node";
import { ConnectionError } from "../../src/errors.js";
import type { Bytes, Delivery } from "../transport.js";
import { readHeaders } from "./nats-headers.js";
import type { Outbox } from "./nats-outbox.js";

const ACK = Uint8Array.of(43, 65, 67, 75); // +ACK
const NAK = Uint8Array.of(45, 78, 65, 75); // -NAK
const WPI = Uint8Array.of(43, 87, 80, 73); // +WPI
const encoder = new TextEncoder();

/** What the ack subject `$JS.ACK.[<domain>.<hash>.]<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[…]` says. */
export interface AckInfo {
  stream: string;
  consumer: string;
  deliveryCount: number;
  streamSeq: number;
  /** Messages of the consumer not yet delivered after this one. */
  pending: number;
}

const DOT = 46;
const ZERO = 48;
/** Where the dots of the subject being parsed are (reused: parsing is synchronous). */
const dots = new Int32Array(16);

export function parseAckSubject(reply: string): AckInfo | undefined {
  if (!reply.startsWith("$JS.ACK.")) return undefined;
  let n = 0;
  for (let i = 8; i < reply.length; i++) {
    if (reply.charCodeAt(i) !== DOT) continue;
    if (n === dots.length) return undefined;
    dots[n++] = i;
  }
  // Tokens after "$JS.ACK": 7 (<stream>…<pending>), or ≥ 9 with a domain and an account hash first.
  const base = n === 6 ? -1 : n >= 8 ? 1 : -2;
  if (base < -1) return undefined;
  const start = (k: number) => (k < 0 ? 8 : (dots[k] as number) + 1);
  const end = (k: number) => (k < n ? (dots[k] as number) : reply.length);
  const stream = reply.slice(start(base), end(base + 1));
  const consumer = reply.slice(start(base + 1), end(base + 2));
  const deliveryCount = digits(reply, start(base + 2), end(base + 3));
  const streamSeq = digits(reply, start(base + 3), end(base + 4));
  const pending = digits(reply, start(base + 6), end(base + 7));
  if (deliveryCount < 0 || streamSeq < 0 || pending < 0) return undefined;
  return { stream, consumer, deliveryCount, streamSeq, pending };
}

/** The decimal number between `from` and `to`, or -1 when it is not one. */
function digits(text: string, from: number, to: number): number {
  if (to <= from || to - from > 15) return -1;
  let value = 0;
  for (let i = from; i < to; i++) {
    const d = text.charCodeAt(i) - ZERO;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/** The consumer that received the message. */
export interface DeliveryOwner {
  readonly outbox: Outbox;
  /** Marks it settled; false when it already was (e.g. returned when its consumer stopped). */
  settle(delivery: NatsDelivery): boolean;
  deadLetter(delivery: NatsDelivery, reason: string): Promise<void>;
}

export class NatsDelivery implements Delivery {
  readonly body: Bytes;
  settled = false;
  deadLettering = false;
  /** Last time JetStream heard about it (for messages held while every slot is taken). */
  touchedAt = Date.now();

  constructor(
    private readonly owner: DeliveryOwner,
    readonly queue: string,
    readonly level: number,
    readonly msg: Msg,
    readonly info: AckInfo,
    readonly deliveryCount: number,
  ) {
    this.body = msg.data;
  }

  // Read on first use: the worker itself needs neither (the task's own headers travel in its body).
  private read?: { priority: number; headers: Record<string, string> };

  get priority(): number {
    this.read ??= readHeaders(this.msg.headers, this.level);
    return this.read.priority;
  }

  get headers(): Readonly<Record<string, string>> {
    this.read ??= readHeaders(this.msg.headers, this.level);
    return this.read.headers;
  }

  async ack(): Promise<void> {
    if (this.owner.settle(this)) this.send(ACK);
  }

  async nack(options: { delayMs?: number } = {}): Promise<void> {
    if (this.owner.settle(this)) this.send(nakPayload(options.delayMs));
  }

  async inProgress(): Promise<void> {
    if (!this.settled) this.send(WPI);
  }

  async deadLetter(reason: string): Promise<void> {
    await this.owner.deadLetter(this, reason);
  }

  sendAck(): void {
    this.send(ACK);
  }

  sendNak(delayMs?: number): void {
    this.send(nakPayload(delayMs));
  }

  sendWorking(): void {
    this.send(WPI);
  }

  private send(payload: Uint8Array): void {
    const outbox = this.owner.outbox;
    if (!outbox.open) {
      throw new ConnectionError(
        `Cannot settle a message of queue "${this.queue}": the NATS connection is closed. ` +
          "JetStream delivers it again after AckWait.",
      );
    }
    if (this.msg.reply) outbox.send(this.msg.reply, payload);
  }
}

/** Deliveries JetStream counted that were not real attempts (delayed messages sent back early). */
export class DeliveryCorrections {
  private readonly early = new Map<string, number>();

  constructor(private readonly limit = 100_000) {}

  add(key: string): void {
    this.early.set(key, (this.early.get(key) ?? 0) + 1);
    if (this.early.size > this.limit) {
      const oldest = this.early.keys().next().value;
      if (oldest !== undefined) this.early.delete(oldest);
    }
  }

  get(key: string): number {
    return this.early.get(key) ?? 0;
  }
}

export function nakPayload(delayMs?: number): Uint8Array {
  if (delayMs === undefined || !(delayMs > 0)) return NAK;
  return encoder.encode(`-NAK ${JSON.stringify({ delay: Math.round(delayMs) * 1_000_000 })}`);
}
