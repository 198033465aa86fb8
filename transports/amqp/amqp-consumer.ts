/**
 * A competing consumer over one or more work queues, on a channel of its own. Its concurrency
 * (the tasks it may hold) is kept with a channel-wide prefetch, which changes at once: the
 * messages in hand plus as many as the free slots could take if each carried the largest pack
 * seen lately (see amqp-packs.ts), so a message of several tasks never brings more than the
 * worker has room for; a larger pack than expected sends back to the queue what does not fit.
 * With single messages the prefetch is the concurrency. 0 cancels the broker consumers, raising
 * it consumes again. After a lost channel or connection it re-opens a channel, re-declares its
 * queues and consumes again; deliveries of the dead channel become stale, and settling them is a
 * no-op (the broker has put them back already).
 *
 * A pack's tasks are deliveries of their own, settled one by one (a nack or a dead letter sends
 * that task alone); the message is acked once all of them are settled.
 *
 * Acks leave together at the end of a tick (see ChannelAcks). The channel also carries fan-out
 * publishes when the transport chooses it (see `publishFanout`): an outcome published there
 * reaches the broker before the ack that follows it, in the order AMQP keeps within a channel.
 *
 * Delivery counting: classic queues do not count redeliveries, so the transport records the
 * count in a header whenever it sends a message again (nack, delay). A message the broker
 * redelivers (its consumer died) is re-stamped first, sent again with one more delivery counted
 * (a pack as single messages), so a task that keeps killing its workers is eventually seen as
 * poison, without the tasks it came with.
 */
import type { Channel, ConsumeMessage, Options } from "amqplib";
import type { Logger } from "../../src/logger.js";
import type { Consumer, DeliveryHandler } from "../transport.js";
import { ChannelAcks } from "./amqp-acks.js";
import type { AmqpConnection } from "./amqp-connection.js";
import { AmqpDelivery, type DeliverySettler, type PackRecord, type Settlement } from "./amqp-delivery.js";
import { type MessageMeta, readMeta, taskTimeoutOver } from "./amqp-messages.js";
import type { AmqpNames } from "./amqp-names.js";
import { DEFAULT_MAX_TASKS_PER_MESSAGE, decodePack, memberOf, PackSizes, prefetchFor } from "./amqp-packs.js";
import { ConsumerRecovery } from "./amqp-recovery.js";
import type { AmqpTopology } from "./amqp-topology.js";

export type ResendTarget =
  | { to: "queue" }
  | { to: "delay"; delayMs: number }
  | { to: "dead"; reason: string; deliveries: number };

/** What a consumer needs from its transport. */
export interface ConsumerHost {
  readonly connection: AmqpConnection;
  readonly topology: AmqpTopology;
  readonly names: AmqpNames;
  readonly logger: Logger;
  readonly consumerTimeoutMs: number;
  readonly operationTimeoutMs: number;
  readonly maxReconnectDelayMs: number;
  /** Publishes a copy of a received message (confirmed) to its queue, a delay, or its dead letters. */
  resend(message: ConsumeMessage, queue: string, target: ResendTarget, deliveries: number): Promise<void>;
  forget(consumer: Consumer): void;
}

interface Held {
  channel: Channel;
  queue: string;
  message: ConsumeMessage;
  meta: MessageMeta;
  pack?: PackRecord;
}

export class AmqpConsumer implements Consumer, DeliverySettler {
  private channel?: Channel;
  /** The acks of the current channel. */
  private acks?: ChannelAcks;
  /** Broker consumer tag per queue, on the current channel. */
  private readonly tags = new Map<string, string>();
  /** The limit set on the current channel (channel-wide: it changes at once; see `wantedPrefetch`). */
  private prefetch = 0;
  /** A prefetch change under way (one at a time; the next one is worked out when it is done). */
  private qosBusy = false;
  private readonly packSizes: PackSizes;
  /** Messages (or tasks of a pack) being sent on by this consumer: each holds a slot meanwhile. */
  private resending = 0;
  private readonly unsettled = new Set<AmqpDelivery>();
  /** Received while at the concurrency limit (after it was lowered): handed over when a slot frees. */
  private overflow: Held[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private work: Promise<void> = Promise.resolve();
  private reconcileQueued?: Promise<void>;
  private readonly recovery: ConsumerRecovery;
  private readonly warned = new Set<string>();
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
    // Expect full packs on a consumer with many slots (at most 1 in 16 of them idle meanwhile).
    this.packSizes = new PackSizes(
      Math.min(DEFAULT_MAX_TASKS_PER_MESSAGE, Math.max(1, Math.floor(this.concurrency / 16))),
    );
  }

  /** Whether this consumer has an open channel (and so may carry fan-out publishes). */
  get open(): boolean {
    return this.channel !== undefined;
  }

  /** Deliveries of the current channel not settled yet (handed over, held back, or being re-sent). */
  get inHand(): number {
    return this.acks?.size ?? 0;
  }

  /** Deliveries acked by the last flush of acks (their frames may still be on their way out). */
  get justAcked(): number {
    return this.acks?.lastFlushed ?? 0;
  }

  /**
   * Publishes a fan-out message on this consumer's channel, without a publisher confirm: it
   * goes out ahead of every ack asked for afterwards on this channel. Resolves once it is handed
   * to the channel (after the channel's buffer drains, if it is full); undefined when the
   * channel is gone (publish elsewhere).
   */
  publishFanout(
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: Options.Publish = FANOUT_PROPERTIES,
  ): Promise<void> | undefined {
    return publishOnChannel(this.channel, exchange, routingKey, content, properties);
  }

  /** Declares the queues and starts consuming (unless paused); fails if that cannot be done in time. */
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
    // Let re-publishes under way finish, so a nack is not also returned to the queue by the close.
    await bounded(Promise.allSettled([...this.inFlight]), Math.min(this.host.operationTimeoutMs, 5000));
    const channel = this.channel;
    this.acks?.flush(); // acks asked for before the stop leave before the channel closes
    this.detach();
    this.unsettled.clear();
    // Closing the channel returns every unacked message (handed over or not) to its queue.
    if (channel)
      await bounded(
        channel.close().catch(() => {}),
        2000,
      );
  }

  settle(delivery: AmqpDelivery, how: Settlement): Promise<void> {
    if (delivery.settled) return RESOLVED;
    delivery.settled = true;
    if (!this.unsettled.has(delivery)) return RESOLVED; // its consumer stopped: the message went back already
    if (how.kind === "ack" || this.channel !== delivery.channel) {
      // A stale delivery (its channel died) is not acked: the broker has requeued it already.
      if (this.channel === delivery.channel) this.ackMessage(delivery);
      this.release(delivery);
      return RESOLVED;
    }
    return this.resendAndSettle(delivery, how);
  }

  private release(delivery: AmqpDelivery): void {
    this.unsettled.delete(delivery);
    if (this.overflow.length > 0) this.pump();
    this.adaptPrefetch();
  }

  /** Acks a delivery's message: its own, or its pack's once every task of the pack is settled. */
  private ackMessage(delivery: AmqpDelivery): void {
    if (delivery.pack === undefined) this.acks?.ack(delivery.message);
    else this.packTaskDone(delivery.pack);
  }

  private packTaskDone(pack: PackRecord, failed = false): void {
    if (failed) pack.failed = true;
    if (--pack.left > 0) return;
    if (pack.failed) this.acks?.nack(pack.message);
    else this.acks?.ack(pack.message);
  }

  /** A nack or a dead letter: a copy goes to its queue, a wait queue or the dead letters, then the ack. */
  private async resendAndSettle(
    delivery: AmqpDelivery,
    how: Exclude<Settlement, { kind: "ack" }>,
  ): Promise<void> {
    const channel = delivery.channel;
    const target: ResendTarget =
      how.kind === "dead"
        ? { to: "dead", reason: how.reason, deliveries: delivery.deliveryCount }
        : how.delayMs > 0
          ? { to: "delay", delayMs: how.delayMs }
          : { to: "queue" };
    const deliveries = how.kind === "dead" ? 0 : delivery.deliveryCount;
    const resent = this.host.resend(delivery.message, delivery.queue, target, deliveries);
    this.track(resent);
    try {
      await resent;
      if (this.channel === channel) this.ackMessage(delivery);
    } catch (error) {
      // Could not send the copy: give the message back to the queue as it is (a pack once all
      // its tasks are settled: the others run again, as after a crash).
      if (this.channel === channel) {
        if (delivery.pack === undefined) this.acks?.nack(delivery.message);
        else this.packTaskDone(delivery.pack, true);
      }
      throw error;
    } finally {
      this.release(delivery);
    }
  }

  // ---- the channel ----------------------------------------------------------------------------

  /** Brings the channel in line with the concurrency: open, prefetch, consuming or cancelled. */
  private reconcile(deadline?: number): Promise<void> {
    this.reconcileQueued ??= this.work.then(() => {
      this.reconcileQueued = undefined;
      return this.apply(deadline);
    });
    const run = this.reconcileQueued;
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
      this.channel = channel;
      this.acks = new ChannelAcks(opened);
      this.tags.clear();
      this.prefetch = 0;
      opened.on("close", () => this.onChannelClosed(opened));
      opened.on("error", (error: Error & { code?: number }) => {
        // 404: a fan-out publish on this channel found its exchange deleted; declare it again.
        if (error.code === 404) this.host.topology.forgetDeclarations();
        this.host.logger.warn(
          { err: error.message, queues: this.queues },
          "RabbitMQ closed a consumer's channel: its unsettled tasks go back to the queue; consuming again",
        );
      });
    }
    if (this.concurrency === 0) {
      await this.cancelAll(channel);
      return;
    }
    const wanted = this.wantedPrefetch();
    if (this.prefetch !== wanted) {
      this.prefetch = wanted;
      await channel.prefetch(wanted, true);
    }
    for (const queue of this.queues) {
      if (this.tags.has(queue) || this.channel !== channel) continue;
      const ok = await channel.consume(
        this.host.names.queue(queue),
        (message) => this.onMessage(channel, queue, message),
        { noAck: false },
      );
      this.tags.set(queue, ok.consumerTag);
    }
    // Deliveries may have arrived before the consume calls returned.
    this.adaptPrefetch();
  }

  /**
   * How many messages the broker may have out to this consumer: those in hand, plus as many more
   * as the free slots could take if each carried the largest pack seen lately. So a worker never
   * receives more tasks than it has free slots (a pack larger than any seen lately is the
   * exception: what does not fit is sent back to the queue). With single messages it is the
   * concurrency, as a plain prefetch would be.
   */
  private wantedPrefetch(): number {
    return prefetchFor(
      this.acks?.size ?? 0,
      this.concurrency - this.unsettled.size - this.overflow.length - this.resending,
      this.concurrency,
      this.packSizes.largest,
    );
  }

  /**
   * Sets the channel's prefetch to what `wantedPrefetch` says, one change at a time, and only with
   * messages in hand: an idle worker waits for the next message to adjust it, so tasks one at a
   * time (the number in hand going 0, 1, 0, …) cause no change after the first.
   */
  private adaptPrefetch(): void {
    const channel = this.channel;
    if (!channel || this.qosBusy || this.stopped || this.concurrency === 0 || !this.acks?.size) return;
    const wanted = this.wantedPrefetch();
    if (wanted === this.prefetch) return;
    this.qosBusy = true;
    this.prefetch = wanted;
    channel.prefetch(wanted, true).then(
      () => {
        this.qosBusy = false;
        if (this.channel === channel) this.adaptPrefetch();
      },
      () => {
        this.qosBusy = false; // the channel is gone: a new one starts from scratch
      },
    );
  }

  private async cancelAll(channel: Channel): Promise<void> {
    for (const [queue, tag] of [...this.tags]) {
      this.tags.delete(queue);
      await channel.cancel(tag);
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
    this.tags.clear();
    this.prefetch = 0;
    this.overflow = [];
  }

  // ---- deliveries -----------------------------------------------------------------------------

  private onMessage(channel: Channel, queue: string, message: ConsumeMessage | null): void {
    if (this.channel !== channel) return;
    // Every delivery of the channel is registered, even one arriving while stopping: a
    // `multiple` ack must know it is there (unsettled) so as never to cover it.
    if (message !== null) this.acks?.received(message);
    if (this.stopped) return;
    if (message === null) {
      // The broker cancelled the consumer (its queue was deleted): declare it again and consume.
      this.host.logger.warn({ queue }, "RabbitMQ cancelled a consumer (queue deleted?): re-declaring it");
      this.tags.delete(queue);
      this.host.topology.forget(this.host.topology.keyOfQueue(queue));
      this.recovery.later();
      return;
    }
    const meta = readMeta(message);
    this.packSizes.note(meta.tasks, 2 * Math.max(1, this.concurrency));
    if (message.fields.redelivered) {
      // A consumer died holding it: count that delivery, then take the re-stamped copy (of each
      // task of a pack, apart: one that keeps killing its workers must not take the others along).
      if (meta.tasks > 1) this.split({ channel, queue, message, meta });
      else this.internal({ channel, queue, message, meta }, { to: "queue" }, meta.deliveries + 1);
      return;
    }
    if (meta.notBefore > 0) {
      const wait = meta.notBefore - Date.now();
      if (wait > 0) {
        this.internal({ channel, queue, message, meta }, { to: "delay", delayMs: wait }, meta.deliveries);
        return;
      }
    }
    if (meta.tasks > 1) this.unpack(channel, queue, message, meta);
    else {
      this.warnLongTimeout(queue, message.content);
      if (this.overflow.length === 0 && this.unsettled.size < this.concurrency) {
        this.handOver(channel, queue, message, meta);
      } else this.overflow.push({ channel, queue, message, meta });
    }
    this.adaptPrefetch();
  }

  /**
   * Hands the tasks of a pack over, each as a delivery of its own, as long as slots are free; a
   * task that does not fit (the pack was larger than any seen lately) is sent back to the queue.
   */
  private unpack(channel: Channel, queue: string, message: ConsumeMessage, meta: MessageMeta): void {
    const bodies = decodePack(message.content, meta.tasks);
    if (bodies === undefined) {
      // Not a pack after all: the worker dead-letters what it cannot decode.
      this.overflow.push({ channel, queue, message, meta: { ...meta, tasks: 1 } });
      this.pump();
      return;
    }
    const pack: PackRecord = { message, left: bodies.length, failed: false };
    for (const body of bodies) {
      const member = memberOf(message, body);
      this.warnLongTimeout(queue, body);
      if (this.overflow.length === 0 && this.unsettled.size < this.concurrency) {
        this.handOver(channel, queue, member, meta, pack);
      } else this.sendBack({ channel, queue, message: member, meta, pack });
    }
  }

  /** A task of a pack that found no free slot goes back to its queue alone (kept here if it cannot). */
  private sendBack(held: Held & { pack: PackRecord }): void {
    const done = this.host.resend(held.message, held.queue, { to: "queue" }, held.meta.deliveries).then(
      () => {
        if (this.channel === held.channel) this.packTaskDone(held.pack);
      },
      () => {
        if (this.channel !== held.channel) return;
        this.overflow.push(held);
        this.pump();
      },
    );
    this.holding(done);
  }

  /** A redelivered pack: each task is sent again on its own, with the delivery counted; then the ack. */
  private split(held: Held): void {
    const { channel, queue, message, meta } = held;
    const bodies = decodePack(message.content, meta.tasks);
    if (bodies === undefined) {
      this.internal({ ...held, meta: { ...meta, tasks: 1 } }, { to: "queue" }, meta.deliveries + 1);
      return;
    }
    const copies = bodies.map((body) =>
      this.host.resend(memberOf(message, body), queue, { to: "queue" }, meta.deliveries + 1),
    );
    const done = Promise.all(copies).then(
      () => {
        if (this.channel === channel) this.acks?.ack(message);
      },
      (error: Error) => {
        this.host.logger.warn(
          { err: error.message, queue },
          "could not split a redelivered pack; delivering it",
        );
        if (this.channel === channel)
          this.unpack(channel, queue, message, { ...meta, deliveries: meta.deliveries + 1 });
      },
    );
    this.holding(done);
  }

  /** Sends a copy of a message on (re-stamped or delayed again) without handing it over. */
  private internal(held: Held, target: ResendTarget, deliveries: number): void {
    const { channel, message } = held;
    const done = this.host.resend(message, held.queue, target, deliveries).then(
      () => {
        if (this.channel === channel) this.acks?.ack(message);
      },
      (error: Error) => {
        this.host.logger.warn(
          { err: error.message, queue: held.queue },
          "could not re-send a message; delivering it",
        );
        if (this.channel !== channel) return;
        const meta = { ...held.meta, deliveries, notBefore: 0 };
        this.overflow.push({ ...held, meta });
        this.pump();
      },
    );
    this.holding(done);
  }

  /**
   * A message (or a task of a pack) being sent on holds a slot until that is done, as it did when
   * the prefetch was the concurrency: a worker re-stamping a redelivered task does not take its
   * copy (or another task) meanwhile.
   */
  private holding(done: Promise<void>): void {
    this.resending++;
    this.track(
      done.finally(() => {
        this.resending--;
        this.adaptPrefetch();
      }),
    );
  }

  private pump(): void {
    while (this.overflow.length > 0 && this.unsettled.size < this.concurrency) {
      const held = this.overflow.shift() as Held;
      if (held.channel === this.channel)
        this.handOver(held.channel, held.queue, held.message, held.meta, held.pack);
    }
  }

  private handOver(
    channel: Channel,
    queue: string,
    message: ConsumeMessage,
    meta: MessageMeta,
    pack?: PackRecord,
  ): void {
    const delivery = new AmqpDelivery(this, channel, message, queue, meta, pack);
    this.unsettled.add(delivery);
    try {
      this.onDelivery(delivery);
    } catch (error) {
      // A handler that throws synchronously has not processed the message: deliver it again.
      this.host.logger.warn({ err: (error as Error).message }, "a delivery handler threw");
      delivery.nack().catch(() => {});
    }
  }

  private warnLongTimeout(queue: string, body: Buffer): void {
    const timeoutMs = taskTimeoutOver(body, this.host.consumerTimeoutMs);
    if (timeoutMs === undefined) return;
    const key = `${queue}:${timeoutMs}`;
    if (this.warned.has(key)) return;
    if (this.warned.size > 1000) this.warned.clear();
    this.warned.add(key);
    this.host.logger.warn(
      { queue, taskTimeoutMs: timeoutMs, consumerTimeoutMs: this.host.consumerTimeoutMs },
      "A task's timeout exceeds RabbitMQ's consumer_timeout: if it runs that long, the broker closes the " +
        "channel and the task is delivered again. Raise consumer_timeout on the broker (and the " +
        "consumerTimeoutMs option), or shorten the task.",
    );
  }

  private track(promise: Promise<unknown>): void {
    const settled: Promise<void> = promise.then(
      () => void this.inFlight.delete(settled),
      () => void this.inFlight.delete(settled),
    );
    this.inFlight.add(settled);
  }
}

/** Fan-out messages are transient (at most once, like the subscriber queues they go to). */
const FANOUT_PROPERTIES: Options.Publish = { persistent: false };
const RESOLVED = Promise.resolve();

/**
 * A publish on a consumer's channel without a confirm: resolves once handed to the channel (after
 * its buffer drains, if full); undefined when the channel is gone (publish elsewhere).
 */
export function publishOnChannel(
  channel: Channel | undefined,
  exchange: string,
  routingKey: string,
  content: Buffer,
  properties: Options.Publish = FANOUT_PROPERTIES,
): Promise<void> | undefined {
  if (!channel) return undefined;
  let writable: boolean;
  try {
    writable = channel.publish(exchange, routingKey, content, properties);
  } catch {
    return undefined; // closed between the check and the publish
  }
  if (writable) return RESOLVED;
  return new Promise<void>((resolve) => {
    const done = () => {
      channel.off("drain", done);
      channel.off("close", done);
      resolve();
    };
    channel.on("drain", done);
    channel.on("close", done);
  });
}

export function normalize(concurrency: number): number {
  return Number.isFinite(concurrency) && concurrency > 0 ? Math.floor(concurrency) : 0;
}

export function bounded(promise: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() =>
    clearTimeout(timer),
  );
}
