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

export function parseAckSubject(reply: string): AckInfo | undefined {
  const t = reply.split(".");
  if (t[0] !== "$JS" || t[1] !== "ACK") return undefined;
  const base = t.length === 9 ? 2 : t.length >= 11 ? 4 : -1;
  if (base < 0) return undefined;
  const info = {
    stream: t[base] as string,
    consumer: t[base + 1] as string,
    deliveryCount: Number(t[base + 2]),
    streamSeq: Number(t[base + 3]),
    pending: Number(t[base + 6]),
  };
  return Number.isFinite(info.deliveryCount) && Number.isFinite(info.pending) ? info : undefined;
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
  readonly priority: number;
  readonly headers: Readonly<Record<string, string>>;
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
    const { priority, headers } = readHeaders(msg.headers, level);
    this.priority = priority;
    this.headers = headers;
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
