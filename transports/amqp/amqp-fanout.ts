/**
 * Fan-out (events, heartbeats, control commands): one topic exchange per namespace; each
 * subscription is an exclusive, auto-delete queue bound to it, consumed without acks
 * (at-most-once, as the contract says). After a lost channel or connection every subscription is
 * declared, bound and consumed again; what was published meanwhile is not replayed.
 */
import { randomUUID } from "node:crypto";
import type { Channel, ConsumeMessage } from "amqplib";
import { TransportError } from "../../src/errors.js";
import type { Logger } from "../../src/logger.js";
import type { FanoutMessage, Subscription } from "../transport.js";
import type { AmqpConnection } from "./amqp-connection.js";
import { type AmqpNames, bindingPattern } from "./amqp-names.js";
import type { AmqpTopology } from "./amqp-topology.js";

interface Sub {
  readonly id: string;
  readonly pattern: string;
  readonly onMessage: (message: FanoutMessage) => void;
  /** The channel it consumes on (undefined: waiting to be attached again). */
  channel?: Channel;
  tag?: string;
  active: boolean;
  /** The attachment under way (one at a time: the queue is exclusive). */
  attaching?: Promise<void>;
}

/** A slow subscriber's queue keeps at most this many messages (the oldest are dropped). */
const MAX_BACKLOG = 100_000;

export class AmqpFanout {
  private channel?: Channel;
  private opening?: Promise<Channel>;
  private readonly subs = new Set<Sub>();
  private restoreTimer?: ReturnType<typeof setTimeout>;
  private restoreDelayMs = 0;
  private closed = false;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly topology: AmqpTopology,
    private readonly names: AmqpNames,
    private readonly logger: Logger,
    private readonly timeoutMs: number,
    private readonly maxRetryDelayMs: number,
  ) {
    connection.onUp(() => {
      if (this.restoreTimer) clearTimeout(this.restoreTimer);
      this.restoreTimer = undefined;
      this.restoreSoon(0);
    });
  }

  async subscribe(subject: string, onMessage: (message: FanoutMessage) => void): Promise<Subscription> {
    const sub: Sub = { id: randomUUID(), pattern: bindingPattern(subject), onMessage, active: true };
    this.subs.add(sub);
    try {
      await this.attach(sub, Date.now() + this.timeoutMs);
    } catch (error) {
      this.subs.delete(sub);
      sub.active = false;
      throw error;
    }
    return { unsubscribe: () => this.detach(sub), inbox: this.names.subscriberQueue(sub.id) };
  }

  private attach(sub: Sub, deadline: number): Promise<void> {
    sub.attaching ??= this.attachNow(sub, deadline).finally(() => {
      sub.attaching = undefined;
    });
    return sub.attaching;
  }

  private async attachNow(sub: Sub, deadline: number): Promise<void> {
    await this.topology.ensureExchange(this.names.events, "topic", deadline);
    const channel = await this.ready(deadline);
    const queue = this.names.subscriberQueue(sub.id);
    await channel.assertQueue(queue, {
      exclusive: true,
      autoDelete: true,
      durable: false,
      arguments: { "x-max-length": MAX_BACKLOG },
    });
    await channel.bindQueue(queue, this.names.events, sub.pattern);
    if (this.channel !== channel)
      throw new TransportError("The subscription channel closed while subscribing.");
    // Set before consuming: a message may arrive in the same read as the consume-ok.
    sub.channel = channel;
    try {
      sub.tag = (
        await channel.consume(queue, (m) => this.deliver(sub, channel, m), { noAck: true })
      ).consumerTag;
    } catch (error) {
      if (sub.channel === channel) sub.channel = undefined;
      throw error;
    }
    if (!sub.active) await channel.deleteQueue(queue).catch(() => {});
  }

  private deliver(sub: Sub, channel: Channel, message: ConsumeMessage | null): void {
    if (!sub.active || sub.channel !== channel) return;
    if (message === null) {
      // The broker cancelled it (its queue was deleted): subscribe again.
      sub.channel = undefined;
      this.restoreSoon(this.restoreDelayMs);
      return;
    }
    try {
      // A message sent to this subscription's inbox came through the default exchange, its routing
      // key the queue's name: its subject travels in the `type` property.
      const subject =
        message.fields.exchange === "" ? String(message.properties.type ?? "") : message.fields.routingKey;
      sub.onMessage({ subject, body: message.content });
    } catch (error) {
      this.logger.error(
        { err: (error as Error).message, subject: message.fields.routingKey },
        "a subscriber threw",
      );
    }
  }

  private async detach(sub: Sub): Promise<void> {
    if (!sub.active) return;
    sub.active = false;
    this.subs.delete(sub);
    const channel = sub.channel;
    sub.channel = undefined;
    if (!channel || channel !== this.channel) return; // its queue died with its channel or connection
    try {
      if (sub.tag) await channel.cancel(sub.tag);
      await channel.deleteQueue(this.names.subscriberQueue(sub.id));
    } catch {
      // The channel is gone: so is the exclusive queue, with the connection.
    }
  }

  private async ready(deadline: number): Promise<Channel> {
    if (this.channel) return this.channel;
    this.opening ??= (async () => {
      const channel = await this.connection.channel(false, deadline);
      channel.on("close", () => {
        if (this.channel !== channel) return;
        this.channel = undefined;
        for (const sub of this.subs) if (sub.channel === channel) sub.channel = undefined;
        this.restoreSoon(this.restoreDelayMs);
      });
      this.channel = channel;
      return channel;
    })().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  /** Attaches every subscription that lost its channel, with back-off while that fails. */
  private restoreSoon(delayMs: number): void {
    if (this.closed || this.restoreTimer) return;
    this.restoreTimer = setTimeout(() => {
      this.restoreTimer = undefined;
      void this.restore();
    }, delayMs);
  }

  private async restore(): Promise<void> {
    if (this.closed || !this.connection.current) return; // onUp restores once the connection is back
    try {
      for (const sub of [...this.subs]) {
        if (sub.active && !sub.channel) await this.attach(sub, Date.now() + this.timeoutMs);
      }
      this.restoreDelayMs = 0;
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, "could not restore AMQP subscriptions; retrying");
      this.restoreDelayMs = Math.min(Math.max(100, this.restoreDelayMs * 2), this.maxRetryDelayMs);
      this.restoreSoon(this.restoreDelayMs);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.restoreTimer) clearTimeout(this.restoreTimer);
    for (const sub of [...this.subs]) await this.detach(sub);
    const channel = this.channel;
    this.channel = undefined;
    await channel?.close().catch(() => {});
  }
}
