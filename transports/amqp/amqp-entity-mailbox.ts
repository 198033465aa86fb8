/**
 * Entity mailboxes on RabbitMQ: one durable classic queue per partition, declared with
 * `x-single-active-consumer`, so of the holders that consume a partition the broker hands messages
 * to one at a time, and to the next (unacked messages first, back at their places) when its
 * channel closes: a release, a crash, a network loss, or missed heartbeats of a frozen process.
 *
 *   partition  <ns>:ent.<box>.<p>    ":" appears in no work queue name (logical names cannot hold it)
 *   marker     <ns>:ent.<box>        an empty queue whose x-max-length is the partition count: a
 *                                    process defining the type with another count is refused (406)
 *
 * Each claim consumes on a channel of its own (prefetch = inFlight), so releasing one partition is
 * closing one channel. Delayed messages go through the transport's TTL wait queues and come back
 * to the partition queue (a delay over the largest bucket comes back early; the entity runtime
 * sends it round again for the rest). Acks leave together at the end of a tick (amqp-acks.ts): a
 * holder that stored a batch of ids' states acks their deliveries in one frame where it can.
 */
import type { Channel, ConsumeMessage, Options } from "amqplib";
import { ConfigError, describeThrown, PayloadTooLargeError, TransportError } from "../../src/errors.js";
import type { Logger } from "../../src/logger.js";
import {
  assertPartition,
  type EntityMailbox,
  type HoldOptions,
  type MailboxHandler,
  type MailboxSendOptions,
  type PartitionHold,
} from "../entity-mailbox.js";
import type { Bytes } from "../transport.js";
import { ChannelAcks } from "./amqp-acks.js";
import type { AmqpConnection } from "./amqp-connection.js";
import { DEFAULT_DELAY_BUCKETS_MS, delayBucket, H_DELAY } from "./amqp-names.js";
import { isUnroutable } from "./amqp-publisher.js";
import type { AmqpTopology } from "./amqp-topology.js";

/** What the mailbox needs from its AmqpTransport. */
export interface AmqpMailboxHost {
  readonly namespace: string;
  readonly connection: AmqpConnection;
  readonly topology: AmqpTopology;
  readonly logger: Logger;
  readonly maxPayloadBytes: number;
  readonly operationTimeoutMs: number;
  readonly delayExchange: string;
  /** Publishes with a publisher confirm (mandatory: an unroutable message fails with isUnroutable). */
  publishConfirmed(
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: Options.Publish,
  ): Promise<void>;
}

export class AmqpEntityMailbox implements EntityMailbox {
  private readonly claims = new Set<AmqpClaim>();
  private readonly declared = new Map<string, Promise<void>>();
  private admin?: Promise<Channel>;
  private closed = false;

  constructor(private readonly host: AmqpMailboxHost) {
    host.connection.onUp(() => {
      this.declared.clear();
      this.admin = undefined;
      for (const claim of this.claims) void claim.open();
    });
  }

  partitionQueue(box: string, p: number): string {
    return `${this.host.namespace}:ent.${box}.${p}`;
  }

  /**
   * Deliveries held by this mailbox's claims, and those their last flush of acks settled: counted
   * as messages under way, so the connection writes a pass of frames as one (amqp-socket.ts).
   */
  get underWay(): number {
    // Each claim remembers its last flush: summed over many idle claims they would say "busy"
    // for good (one ask at a time is written frame by frame, a little sooner), so the largest.
    let held = 0;
    let flushed = 0;
    for (const claim of this.claims) {
      held += claim.held;
      flushed = Math.max(flushed, claim.lastFlushed);
    }
    return held + flushed;
  }

  markerQueue(box: string): string {
    return `${this.host.namespace}:ent.${box}`;
  }

  async send(
    box: string,
    partitions: number,
    partition: number,
    body: Bytes,
    _options?: MailboxSendOptions,
  ): Promise<void> {
    this.check(box, partitions, partition, body);
    await this.ensure(box, partitions);
    await this.publish("", this.partitionQueue(box, partition), body, { persistent: true }, box, partitions);
  }

  async sendLater(
    box: string,
    partitions: number,
    partition: number,
    body: Bytes,
    delayMs: number,
    _options?: MailboxSendOptions,
  ): Promise<void> {
    this.check(box, partitions, partition, body);
    await this.ensure(box, partitions);
    if (delayMs <= 0) return this.send(box, partitions, partition, body);
    const bucket = delayBucket(delayMs, DEFAULT_DELAY_BUCKETS_MS);
    await this.host.topology.ensureWaitQueue(bucket, Date.now() + this.host.operationTimeoutMs);
    const properties: Options.Publish = { persistent: true, headers: { [H_DELAY]: String(bucket) } };
    await this.publish(
      this.host.delayExchange,
      this.partitionQueue(box, partition),
      body,
      properties,
      box,
      partitions,
    );
  }

  async hold(
    box: string,
    partitions: number,
    partition: number,
    onMessage: MailboxHandler,
    options: HoldOptions,
  ): Promise<PartitionHold> {
    this.check(box, partitions, partition);
    await this.ensure(box, partitions);
    const claim = new AmqpClaim(
      this.host,
      this.partitionQueue(box, partition),
      partition,
      onMessage,
      options,
      (c) => this.claims.delete(c),
    );
    this.claims.add(claim);
    await claim.open();
    return claim;
  }

  async depth(box: string, partitions: number, partition: number): Promise<number> {
    this.check(box, partitions, partition);
    await this.ensure(box, partitions);
    return this.withAdmin(
      async (ch) => (await ch.checkQueue(this.partitionQueue(box, partition))).messageCount,
    );
  }

  async remove(box: string, partitions: number): Promise<void> {
    assertPartition(box, partitions);
    for (const claim of [...this.claims])
      if (claim.queue.startsWith(`${this.markerQueue(box)}.`)) await claim.release();
    for (const key of [...this.declared.keys()]) if (key.startsWith(`${box}/`)) this.declared.delete(key);
    await this.withAdmin(async (ch) => {
      for (let p = 0; p < partitions; p++) await ch.deleteQueue(this.partitionQueue(box, p));
      await ch.deleteQueue(this.markerQueue(box));
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.claims].map((c) => c.release()));
    const admin = await this.admin?.catch(() => undefined);
    this.admin = undefined;
    await admin?.close().catch(() => {});
  }

  private check(box: string, partitions: number, partition: number, body?: Bytes): void {
    if (this.closed) throw new TransportError("This AMQP transport is closed; its entity mailboxes too.");
    assertPartition(box, partitions, partition);
    if (body !== undefined && body.byteLength > this.host.maxPayloadBytes) {
      throw new PayloadTooLargeError(body.byteLength, this.host.maxPayloadBytes, "entity message");
    }
  }

  /** Declares the box's marker and partition queues once per connection. */
  private ensure(box: string, partitions: number): Promise<void> {
    const key = `${box}/${partitions}`;
    let done = this.declared.get(key);
    if (!done) {
      done = this.withAdmin(async (ch) => {
        try {
          await ch.assertQueue(this.markerQueue(box), {
            durable: true,
            arguments: { "x-max-length": partitions, "x-overflow": "reject-publish" },
          });
        } catch (error) {
          if ((error as { code?: number }).code === 406) {
            throw new ConfigError(
              `The entity mailbox "${box}" exists on RabbitMQ with another partition count than ${partitions}. ` +
                "Every process must define the entity with the same partitions option (changing it needs the " +
                "mailbox drained and removed first).",
              { cause: error },
            );
          }
          throw error;
        }
        for (let p = 0; p < partitions; p++) {
          await ch.assertQueue(this.partitionQueue(box, p), {
            durable: true,
            arguments: { "x-single-active-consumer": true, "x-queue-version": 2 },
          });
        }
      });
      this.declared.set(key, done);
      done.catch(() => this.declared.delete(key));
    }
    return done;
  }

  private async publish(
    exchange: string,
    routingKey: string,
    body: Bytes,
    properties: Options.Publish,
    box: string,
    partitions: number,
  ): Promise<void> {
    const content = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    try {
      await this.host.publishConfirmed(exchange, routingKey, content, properties);
    } catch (error) {
      if (!isUnroutable(error)) throw error;
      // The queue vanished (deleted by hand, a broker that lost it): declare again, once.
      this.declared.delete(`${box}/${partitions}`);
      await this.ensure(box, partitions);
      await this.host.publishConfirmed(exchange, routingKey, content, properties).catch((again: unknown) => {
        throw again instanceof TransportError
          ? again
          : new TransportError(`Could not append to "${routingKey}": ${describeThrown(again)}`, {
              cause: error,
            });
      });
    }
  }

  private async withAdmin<T>(op: (ch: Channel) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.admin ??= this.host.connection
        .channel(false, Date.now() + this.host.operationTimeoutMs)
        .then((ch) => {
          ch.on("close", () => {
            this.admin = undefined;
          });
          return ch;
        });
      const admin = this.admin;
      try {
        return await op(await admin);
      } catch (error) {
        if (this.admin === admin) this.admin = undefined;
        if (error instanceof ConfigError || attempt >= 2) {
          throw error instanceof TransportError || error instanceof ConfigError
            ? error
            : new TransportError(`RabbitMQ refused an entity mailbox operation: ${describeThrown(error)}`, {
                cause: error,
                retryable: true,
              });
        }
      }
    }
  }
}

/** A consumer of one partition queue on a channel of its own; standby until the broker makes it active. */
class AmqpClaim implements PartitionHold {
  private channel?: Channel;
  /** The acks of `channel`. */
  private acks?: ChannelAcks;
  private opening?: Promise<void>;
  private released = false;

  constructor(
    private readonly host: AmqpMailboxHost,
    readonly queue: string,
    readonly partition: number,
    private readonly onMessage: MailboxHandler,
    private readonly options: HoldOptions,
    private readonly forget: (claim: AmqpClaim) => void,
  ) {}

  /**
   * Opens its channel and consumer (again, after a reconnection). One at a time: a second consumer
   * of this claim would hold messages nobody acks (and, active, stall the partition).
   */
  open(): Promise<void> {
    this.opening ??= this.openOnce().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async openOnce(): Promise<void> {
    if (this.released) return;
    const stale = this.channel;
    this.acks?.flush();
    this.channel = undefined;
    this.acks = undefined;
    await stale?.close().catch(() => {});
    let ch: Channel | undefined;
    try {
      ch = await this.host.connection.channel(false, Date.now() + this.host.operationTimeoutMs);
      const opened = ch;
      await opened.prefetch(this.options.inFlight);
      opened.on("close", () => this.closed(opened));
      this.channel = opened;
      const acks = new ChannelAcks(opened);
      this.acks = acks;
      await opened.consume(this.queue, (msg) => this.deliver(opened, acks, msg), { noAck: false });
    } catch (error) {
      this.host.logger.warn(
        { queue: this.queue, err: describeThrown(error) },
        "could not consume an entity partition",
      );
      if (this.channel === ch) this.channel = undefined;
      await ch?.close().catch(() => {});
      // Connected: try again shortly. Not connected: the reconnection opens every claim.
      if (!this.released && this.host.connection.current) setTimeout(() => void this.open(), 1000).unref();
      return;
    }
    if (this.released) await ch.close().catch(() => {});
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.forget(this);
    const ch = this.channel;
    this.acks?.flush(); // acks asked for before the release leave before the channel closes
    this.channel = undefined;
    this.acks = undefined;
    // Closing the channel requeues what it holds unacked, at their places, before the next consumer gets any.
    await ch?.close().catch(() => {});
  }

  /** Deliveries in hand (see AmqpEntityMailbox.underWay). */
  get held(): number {
    return this.acks?.size ?? 0;
  }

  /** Deliveries the last flush of acks settled. */
  get lastFlushed(): number {
    return this.acks?.lastFlushed ?? 0;
  }

  private deliver(ch: Channel, acks: ChannelAcks, msg: ConsumeMessage | null): void {
    if (msg === null) {
      this.closed(ch); // cancelled by the broker (the queue was deleted)
      return;
    }
    if (this.released || this.channel !== ch) return;
    acks.received(msg);
    const claim = this;
    try {
      this.onMessage({
        partition: this.partition,
        body: msg.content,
        deliveryCount: msg.fields.redelivered ? 2 : 1,
        ack() {
          // A message of a closed channel went back to the queue: acking it on another would be refused.
          if (claim.channel === ch) acks.ack(msg);
        },
      });
    } catch {
      // Not taken: it stays unacked until the channel closes.
    }
  }

  private closed(ch: Channel): void {
    if (this.channel !== ch) return;
    this.channel = undefined;
    this.acks = undefined;
    if (this.released) return;
    this.options.onReset(new TransportError(`the channel of entity partition queue "${this.queue}" closed`));
    // The connection lives on (the broker closed just this channel): consume again shortly. A lost
    // connection reopens every claim itself once it is back.
    if (this.host.connection.current) setTimeout(() => void this.open(), 1000).unref();
  }
}
