/**
 * One member of an event group on RabbitMQ: a channel of its own with a prefetch of its
 * concurrency, consuming the group's queue with manual acks. After a lost channel or connection
 * it declares the group again and consumes on a new channel; a delivery of the old channel is
 * never settled on the new one (its tag would be unknown there): the broker has requeued it.
 * Acks wait for the end of the turn: the longest run of handled deliveries from the oldest one
 * on is acked with one `basic.ack` (multiple), the others one by one; releases leave at once.
 */
import type { Channel, ConsumeMessage } from "amqplib";
import { describeThrown } from "../../src/errors.js";
import type { EventDelivery, GroupSpec } from "../event-log.js";
import { type AmqpEventLink, asEventTransportError, H_SEQ } from "./amqp-event-log.js";

export interface MemberHooks {
  /** Declares (and binds) the group's queue; resolves with its name. */
  ensureGroup(): Promise<string>;
  deadLetter(type: string, body: Uint8Array, reason: string): Promise<void>;
}

export class AmqpEventMember {
  private channel?: Channel;
  private closed = false;
  private attaching?: Promise<void>;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private retryDelayMs = 100;
  private readonly unsettled = new Set<AmqpEventDelivery>();
  /** The current channel's deliveries not acked on the broker yet, in delivery order. */
  private order: AmqpEventDelivery[] = [];
  private flushScheduled = false;
  private readonly flushSoon = (): void => {
    this.flushScheduled = false;
    this.flushAcks();
  };
  private readonly offUp: () => void;

  constructor(
    private readonly link: AmqpEventLink,
    private readonly spec: GroupSpec,
    private readonly onEvent: (delivery: EventDelivery) => void,
    private readonly hooks: MemberHooks,
  ) {
    this.offUp = link.connection.onUp(() => this.reattachSoon(0));
  }

  async start(): Promise<void> {
    try {
      await this.attach();
    } catch (error) {
      throw asEventTransportError(error, `joining the group "${this.spec.group}"`);
    }
  }

  private attach(): Promise<void> {
    this.attaching ??= this.attachNow().finally(() => {
      this.attaching = undefined;
    });
    return this.attaching;
  }

  private async attachNow(): Promise<void> {
    const queue = await this.hooks.ensureGroup();
    if (this.closed) return;
    const channel = await this.link.connection.channel(false, Date.now() + this.link.publishTimeoutMs);
    channel.on("close", () => {
      if (this.channel !== channel) return;
      this.channel = undefined;
      this.unsettled.clear(); // requeued by the broker
      this.order = [];
      this.reattachSoon(this.retryDelayMs);
    });
    await channel.prefetch(this.spec.concurrency);
    this.channel = channel;
    await channel.consume(queue, (m) => this.receive(channel, m), { noAck: false });
    this.retryDelayMs = 100;
    if (this.closed) await channel.close().catch(() => {});
  }

  private reattachSoon(delayMs: number): void {
    if (this.closed || this.retryTimer || this.channel) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed || this.channel || !this.link.connection.current) return;
      this.attach().catch((error: unknown) => {
        this.link.logger.warn(
          { err: describeThrown(error), group: this.spec.group },
          "could not rejoin an event group; retrying",
        );
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, 5000);
        this.reattachSoon(this.retryDelayMs);
      });
    }, delayMs);
  }

  private receive(channel: Channel, m: ConsumeMessage | null): void {
    if (m === null) {
      // Cancelled by the broker (the queue was deleted): declare it again.
      if (this.channel === channel) {
        this.channel = undefined;
        void channel.close().catch(() => {});
        this.reattachSoon(this.retryDelayMs);
      }
      return;
    }
    if (this.closed || this.channel !== channel) return;
    const d = new AmqpEventDelivery(this, channel, m);
    this.unsettled.add(d);
    this.order.push(d);
    try {
      this.onEvent(d);
    } catch {
      d.release();
    }
  }

  settle(d: AmqpEventDelivery, requeue: boolean | undefined): void {
    if (!this.unsettled.delete(d)) return;
    if (d.channel !== this.channel) return; // its channel is gone: the broker requeued it
    if (requeue === undefined) {
      d.handled = true;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushSoon);
      }
      return;
    }
    const at = this.order.indexOf(d);
    if (at >= 0) this.order.splice(at, 1);
    try {
      d.channel.nack(d.message, false, requeue);
    } catch {
      // The channel closed meanwhile: requeued by the broker.
    }
  }

  /** Acks the handled deliveries: the oldest run of them with one multiple ack, the rest one by one. */
  private flushAcks(): void {
    const channel = this.channel;
    const order = this.order;
    if (channel === undefined || order.length === 0) return;
    let run = 0;
    while (run < order.length && (order[run] as AmqpEventDelivery).handled) run++;
    try {
      if (run > 0) channel.ack((order[run - 1] as AmqpEventDelivery).message, run > 1);
      const rest: AmqpEventDelivery[] = [];
      for (let i = run; i < order.length; i++) {
        const d = order[i] as AmqpEventDelivery;
        if (d.handled) channel.ack(d.message);
        else rest.push(d);
      }
      this.order = rest;
    } catch {
      // The channel closed meanwhile: requeued by the broker.
      this.order = [];
    }
  }

  deadLetter(d: AmqpEventDelivery, reason: string): Promise<void> {
    return this.hooks.deadLetter(d.type, d.body, reason);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.offUp();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.attaching?.catch(() => {});
    this.flushAcks();
    for (const d of [...this.unsettled]) d.release();
    const channel = this.channel;
    this.channel = undefined;
    await channel?.close().catch(() => {});
  }
}

class AmqpEventDelivery implements EventDelivery {
  readonly type: string;
  readonly body: Uint8Array;
  readonly sequence: number | undefined;
  readonly deliveryCount: number;
  /** Handled, its ack waiting for the end of the turn. */
  handled = false;

  constructor(
    private readonly member: AmqpEventMember,
    readonly channel: Channel,
    readonly message: ConsumeMessage,
  ) {
    this.type = String(message.properties.type ?? "");
    this.body = message.content;
    const seq = message.properties.headers?.[H_SEQ];
    this.sequence = typeof seq === "number" ? seq : undefined;
    // Classic queues only say whether a message was delivered before.
    this.deliveryCount = message.fields.redelivered ? 2 : 1;
  }

  ack(): void {
    this.member.settle(this, undefined);
  }

  release(): void {
    this.member.settle(this, true);
  }

  inProgress(): void {}

  async deadLetter(reason: string): Promise<void> {
    await this.member.deadLetter(this, reason);
    this.ack();
  }
}
