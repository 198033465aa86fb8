/**
 * The consumer of quorum work queues (`queueType: "quorum"`): one queue per priority level (see
 * amqp-quorum.ts), which RabbitMQ does not order among themselves, so the order is kept here.
 *
 * - Each level queue of each logical queue has a broker consumer on one channel, registered from
 *   the highest level down. Quorum queues refuse a channel-wide prefetch (the broker closes the
 *   connection), so each has its own: the concurrency, rounded up to a power of two. A rise above
 *   it consumes again with the larger one; a fall keeps it (consuming again costs a round trip per
 *   level) and is applied here; 0 cancels them all.
 * - Messages received wait in `held`, highest level first, first in first out within a level, and
 *   are handed over, highest first, while fewer than `concurrency` are unsettled. A level's
 *   consumer holds up to its prefetch, so when a slot frees the held messages of a level with
 *   work waiting are ahead of any lower one: priority is strict among what the broker has sent,
 *   and what it has not sent is at most one round trip behind (see ARCHITECTURE.md).
 * - A worker thus holds up to prefetch x 4 messages per queue (not only its free slots, as on
 *   classic queues); the held ones go back to their queue when it stops or dies.
 * - The broker counts returns (`x-delivery-count`); a delivery's count is the transport's own
 *   (its retries are new messages) plus those. Past `x-delivery-limit` returns, the broker
 *   dead-letters the message to `dead.<queue>`. No re-stamping copy is made on a redelivery.
 * - Nacks, delays and dead letters are confirmed copies, then the ack, as on classic queues.
 */
import type { Channel, ConsumeMessage, Options } from "amqplib";
import type { Consumer, DeliveryHandler } from "../transport.js";
import { ChannelAcks } from "./amqp-acks.js";
import {
  bounded,
  type ConsumerHost,
  normalize,
  publishOnChannel,
  type ResendTarget,
} from "./amqp-consumer.js";
import { AmqpDelivery, type DeliverySettler, type Settlement } from "./amqp-delivery.js";
import { type MessageMeta, readMeta } from "./amqp-messages.js";
import { LEVELS_HIGH_FIRST, MAX_PRIORITY } from "./amqp-names.js";
import { quorumReturns } from "./amqp-quorum.js";
import { ConsumerRecovery } from "./amqp-recovery.js";

interface Held {
  channel: Channel;
  queue: string;
  level: number;
  message: ConsumeMessage;
  meta: MessageMeta;
}

const RESOLVED = Promise.resolve();

export class AmqpLevelConsumer implements Consumer, DeliverySettler {
  private channel?: Channel;
  private acks?: ChannelAcks;
  private tags: string[] = [];
  /** The per-consumer prefetch the current broker consumers were started with (0: none). */
  private prefetch = 0;
  private readonly unsettled = new Set<AmqpDelivery>();
  private held: Held[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private work: Promise<void> = RESOLVED;
  private readonly recovery: ConsumerRecovery;
  private stopped = false;

  constructor(
    private readonly host: ConsumerHost,
    readonly queues: readonly string[],
    private readonly onDelivery: DeliveryHandler,
    private concurrency: number,
  ) {
    this.concurrency = normalize(concurrency);
    this.recovery = new ConsumerRecovery(
      host,
      queues,
      () => this.start(),
      () => this.stopped,
    );
  }

  get open(): boolean {
    return this.channel !== undefined;
  }

  get inHand(): number {
    return this.acks?.size ?? 0;
  }

  get justAcked(): number {
    return this.acks?.lastFlushed ?? 0;
  }

  /** A fan-out publish on this channel, ahead of the acks that follow (see AmqpConsumer.publishFanout). */
  publishFanout(
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties?: Options.Publish,
  ): Promise<void> | undefined {
    return publishOnChannel(this.channel, exchange, routingKey, content, properties);
  }

  async start(): Promise<void> {
    const deadline = Date.now() + this.host.operationTimeoutMs;
    for (const queue of this.queues) await this.host.topology.ensureQueue(queue, deadline);
    await this.reconcile(deadline);
  }

  setConcurrency(concurrency: number): void {
    this.concurrency = normalize(concurrency);
    if (this.stopped) return;
    this.pump();
    this.reconcile().catch((error: Error) => this.recovery.later(error));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.recovery.cancel();
    this.host.forget(this);
    await bounded(Promise.allSettled([...this.inFlight]), Math.min(this.host.operationTimeoutMs, 5000));
    const channel = this.channel;
    this.acks?.flush();
    this.detach();
    this.unsettled.clear();
    // Closing the channel returns every unacked message (handed over or held) to its queue.
    if (channel)
      await bounded(
        channel.close().catch(() => {}),
        2000,
      );
  }

  settle(delivery: AmqpDelivery, how: Settlement): Promise<void> {
    if (delivery.settled) return RESOLVED;
    delivery.settled = true;
    if (!this.unsettled.has(delivery)) return RESOLVED;
    if (how.kind === "ack" || this.channel !== delivery.channel) {
      if (this.channel === delivery.channel) this.acks?.ack(delivery.message);
      this.release(delivery);
      return RESOLVED;
    }
    const target: ResendTarget =
      how.kind === "dead"
        ? { to: "dead", reason: how.reason, deliveries: delivery.deliveryCount }
        : how.delayMs > 0
          ? { to: "delay", delayMs: how.delayMs }
          : { to: "queue" };
    const deliveries = how.kind === "dead" ? 0 : delivery.deliveryCount;
    const resent = this.host.resend(delivery.message, delivery.queue, target, deliveries);
    this.track(resent);
    return resent.then(
      () => {
        if (this.channel === delivery.channel) this.acks?.ack(delivery.message);
        this.release(delivery);
      },
      (error: unknown) => {
        // Could not send the copy: the message goes back to its queue as it is.
        if (this.channel === delivery.channel) this.acks?.nack(delivery.message);
        this.release(delivery);
        throw error;
      },
    );
  }

  private release(delivery: AmqpDelivery): void {
    this.unsettled.delete(delivery);
    this.pump();
  }

  // ---- the channel ----------------------------------------------------------------------------

  private reconcile(deadline?: number): Promise<void> {
    const run = this.work.then(() => this.apply(deadline));
    this.work = run.catch(() => {});
    return run;
  }

  private async apply(deadline?: number): Promise<void> {
    if (this.stopped) return;
    let channel = this.channel;
    if (!channel) {
      if (this.concurrency === 0) return;
      const opened = await this.host.connection.channel(false, deadline);
      if (this.stopped) {
        await opened.close().catch(() => {});
        return;
      }
      channel = opened;
      this.channel = opened;
      this.acks = new ChannelAcks(opened);
      this.tags = [];
      this.prefetch = 0;
      opened.on("close", () => this.onChannelClosed(opened));
      opened.on("error", (error: Error & { code?: number }) => {
        if (error.code === 404) this.host.topology.forgetDeclarations();
        this.host.logger.warn(
          { err: error.message, queues: this.queues },
          "RabbitMQ closed a consumer's channel: its unsettled tasks go back to the queue; consuming again",
        );
      });
    }
    const wanted = this.concurrency === 0 ? 0 : Math.max(this.prefetch, powerOfTwo(this.concurrency));
    if (wanted === this.prefetch) return;
    for (const tag of this.tags.splice(0)) await channel.cancel(tag);
    this.prefetch = 0;
    if (wanted === 0) return;
    await channel.prefetch(wanted, false);
    this.prefetch = wanted;
    // Highest level first across the queues: a backlog's first deliveries are its most urgent.
    for (const level of LEVELS_HIGH_FIRST) {
      for (const queue of this.queues) {
        const names = this.host.names.physicalQueues(queue);
        // A dead-letter queue is one queue: consumed once, as if of the highest level.
        const name =
          names.length === 1 ? (level === MAX_PRIORITY ? names[0] : undefined) : names[MAX_PRIORITY - level];
        if (name === undefined) continue;
        if (this.channel !== channel) return;
        const ok = await channel.consume(name, (m) => this.onMessage(channel, queue, level, m), {
          noAck: false,
        });
        this.tags.push(ok.consumerTag);
      }
    }
  }

  private onChannelClosed(channel: Channel): void {
    if (this.channel !== channel) return;
    this.detach();
    if (!this.stopped) this.recovery.later();
  }

  private detach(): void {
    this.channel = undefined;
    this.acks = undefined;
    this.tags = [];
    this.prefetch = 0;
    this.held = [];
  }

  // ---- deliveries -----------------------------------------------------------------------------

  private onMessage(channel: Channel, queue: string, level: number, message: ConsumeMessage | null): void {
    if (this.channel !== channel) return;
    if (message !== null) this.acks?.received(message);
    if (this.stopped) return;
    if (message === null) {
      // The broker cancelled the consumer (its queue was deleted): declare it again and consume.
      this.host.logger.warn({ queue }, "RabbitMQ cancelled a consumer (queue deleted?): re-declaring it");
      this.host.topology.forget(this.host.topology.keyOfQueue(queue));
      channel.close().catch(() => {}); // consumed again on a new channel, every level
      return;
    }
    let meta = readMeta(message);
    const returns = quorumReturns(message.properties.headers);
    if (returns > 0) meta = { ...meta, deliveries: meta.deliveries + returns };
    if (meta.notBefore > 0 && meta.notBefore > Date.now()) {
      this.delayAgain({ channel, queue, level, message, meta });
      return;
    }
    // Highest level first, first in first out within a level.
    let i = this.held.length;
    while (i > 0 && (this.held[i - 1] as Held).level < level) i--;
    this.held.splice(i, 0, { channel, queue, level, message, meta });
    this.pump();
  }

  /** A delay beyond the largest bucket: back to a wait queue until it is due, then the ack. */
  private delayAgain(held: Held): void {
    const { channel, message, meta } = held;
    const done = this.host
      .resend(message, held.queue, { to: "delay", delayMs: meta.notBefore - Date.now() }, meta.deliveries)
      .then(
        () => {
          if (this.channel === channel) this.acks?.ack(message);
        },
        () => {
          if (this.channel === channel) this.acks?.nack(message);
        },
      );
    this.track(done);
  }

  private pump(): void {
    while (this.held.length > 0 && this.unsettled.size < this.concurrency) {
      const held = this.held.shift() as Held;
      if (held.channel !== this.channel) continue;
      const delivery = new AmqpDelivery(this, held.channel, held.message, held.queue, held.meta);
      this.unsettled.add(delivery);
      try {
        this.onDelivery(delivery);
      } catch (error) {
        this.host.logger.warn({ err: (error as Error).message }, "a delivery handler threw");
        delivery.nack().catch(() => {});
      }
    }
  }

  private track(promise: Promise<unknown>): void {
    const settled: Promise<void> = promise.then(
      () => void this.inFlight.delete(settled),
      () => void this.inFlight.delete(settled),
    );
    this.inFlight.add(settled);
  }
}

function powerOfTwo(n: number): number {
  let p = 1;
  while (p < n && p < 65_535) p *= 2;
  return Math.min(p, 65_535);
}
