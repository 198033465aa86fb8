/**
 * The AMQP 0-9-1 (RabbitMQ) transport. Work queues are durable classic queues with
 * `x-max-priority` (one level per TaskPriority value), persistent messages, publisher confirms
 * and manual acks; delays go through per-bucket TTL wait queues that dead-letter back to the work
 * queue; dead letters go to `dead.<queue>`. The connection reconnects by itself and every channel
 * owner (publisher, topology, consumers, fan-out) recovers on the new one. See README.md here.
 */
import { randomUUID } from "node:crypto";
import type { ConsumeMessage, Options } from "amqplib";
import {
  ConfigError,
  FastAgenticError,
  PayloadTooLargeError,
  PublishError,
  StateError,
  TransportError,
} from "../../src/errors.js";
import { childLogger, getDefaultLogger, type Logger } from "../../src/logger.js";
import type { DeadLetters } from "../dead-letters.js";
import type { EntityMailbox } from "../entity-mailbox.js";
import {
  assertLogicalName,
  type Bytes,
  type ConsumeOptions,
  type Consumer,
  DEAD_LETTER_REASON_HEADER,
  type DeliveryHandler,
  deadLetterQueueOf,
  type EnqueueOptions,
  type FanoutMessage,
  type PublishOptions,
  type Subscription,
  type Transport,
  type TransportState,
  type TransportStatusEvent,
} from "../transport.js";
import { AmqpConnection } from "./amqp-connection.js";
import { AmqpConsumer, type ConsumerHost, type ResendTarget } from "./amqp-consumer.js";
import { AmqpDeadLetters, stampDeadLetter } from "./amqp-dead-letters.js";
import { AmqpEntityMailbox } from "./amqp-entity-mailbox.js";
import { AmqpEventLog } from "./amqp-event-log.js";
import { AmqpFanout } from "./amqp-fanout.js";
import { AmqpLevelConsumer } from "./amqp-level-consumer.js";
import { copyProperties, newMessageProperties } from "./amqp-messages.js";
import { AmqpNames, delayBucket, H_DELAY, H_NOT_BEFORE } from "./amqp-names.js";
import { type AmqpTransportOptions, type ResolvedAmqpOptions, resolveAmqpOptions } from "./amqp-options.js";
import { Packer } from "./amqp-packs.js";
import { AmqpPublisher, isUnroutable } from "./amqp-publisher.js";
import { AmqpTopology } from "./amqp-topology.js";
import { DelayedCounts, SendOnce } from "./amqp-tracking.js";

export class AmqpTransport implements Transport, ConsumerHost {
  readonly kind = "amqp";
  readonly maxPayloadBytes: number;
  /** RabbitMQ redelivers only when a channel closes: there is no ack deadline to extend. */
  readonly ackDeadlineMs: number | undefined = undefined;
  /** The broker's consumer_timeout as configured (see the option). */
  readonly consumerTimeoutMs: number;
  readonly namespace: string;
  readonly operationTimeoutMs: number;
  readonly maxReconnectDelayMs: number;
  readonly connection: AmqpConnection;
  readonly topology: AmqpTopology;
  readonly names: AmqpNames;
  readonly logger: Logger;

  private readonly options: ResolvedAmqpOptions;
  private readonly publisher: AmqpPublisher;
  private readonly fanout: AmqpFanout;
  private readonly consumers = new Set<AmqpConsumer | AmqpLevelConsumer>();
  private readonly dedup: SendOnce;
  /** Groups a turn's enqueues into messages of several tasks; undefined with maxTasksPerMessage 1. */
  private readonly packer?: Packer;
  private readonly delayed = new DelayedCounts();
  private closing?: Promise<void>;
  private events?: AmqpEventLog;
  private mailbox?: AmqpEntityMailbox;
  private deadLetterStore?: AmqpDeadLetters;

  constructor(options: AmqpTransportOptions = {}) {
    this.options = resolveAmqpOptions(options);
    const o = this.options;
    this.namespace = o.namespace;
    this.maxPayloadBytes = o.maxPayloadBytes;
    this.consumerTimeoutMs = o.consumerTimeoutMs;
    this.operationTimeoutMs = o.publishTimeoutMs;
    this.maxReconnectDelayMs = o.reconnect.maxDelayMs;
    this.logger = childLogger(o.logger ?? getDefaultLogger(), { transport: "amqp", namespace: o.namespace });
    this.names = new AmqpNames(o.namespace, o.queueVersion, o.queueType, o.deliveryLimit);
    this.connection = new AmqpConnection(o, this.logger);
    this.topology = new AmqpTopology(this.connection, this.names, this.logger);
    this.publisher = new AmqpPublisher(this.connection, this.logger, (error) => {
      // 404 on publish: an exchange vanished (deleted by hand); declare everything again.
      if (error.code === 404) this.topology.forgetDeclarations();
    });
    this.fanout = new AmqpFanout(
      this.connection,
      this.topology,
      this.names,
      this.logger,
      o.publishTimeoutMs,
      o.reconnect.maxDelayMs,
    );
    this.dedup = new SendOnce(o.dedupWindowMs, o.dedupMaxEntries);
    // Quorum queues: one message per task (the broker counts returns and dead-letters per message).
    if (o.maxTasksPerMessage > 1 && o.queueType === "classic") {
      this.packer = new Packer(o.maxTasksPerMessage, (queue, content, properties) =>
        this.sendTo(queue, content, properties, 0, Date.now() + this.options.publishTimeoutMs),
      );
    }
    this.connection.busy = () => this.underWay() > 1;
  }

  /**
   * Messages under way: publishes not yet confirmed, deliveries held by this transport's consumers
   * and entity partition claims, and those their last batch of acks settled (under load a turn acks many at once, leaving none
   * in hand by the time the frames are written: still one write for them all).
   */
  private underWay(): number {
    let n = this.publisher.pending;
    for (const consumer of this.consumers) n += consumer.inHand + consumer.justAcked;
    return n + (this.mailbox?.underWay ?? 0);
  }

  get state(): TransportState {
    return this.connection.state;
  }

  /** Entity mailboxes: partition queues with single active consumer (see amqp-entity-mailbox.ts). */
  entityMailbox(): EntityMailbox {
    this.mailbox ??= new AmqpEntityMailbox({
      namespace: this.namespace,
      connection: this.connection,
      topology: this.topology,
      logger: this.logger,
      maxPayloadBytes: this.maxPayloadBytes,
      operationTimeoutMs: this.operationTimeoutMs,
      delayExchange: this.names.delayExchange,
      publishConfirmed: (exchange, routingKey, content, properties) =>
        this.publisher.send(
          { exchange, routingKey, content, properties, mandatory: true },
          Date.now() + this.options.publishTimeoutMs,
        ),
    });
    return this.mailbox;
  }

  /** Where it connects, with the password hidden. */
  get url(): string {
    return this.options.where;
  }

  connect(): Promise<void> {
    if (this.closing)
      return Promise.reject(new StateError("This AmqpTransport was closed; create a new one."));
    return this.connection.connect();
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** The event log (EventBus) on this connection: see amqp-event-log.ts for what it declares. */
  eventLog(): AmqpEventLog {
    this.events ??= new AmqpEventLog({
      connection: this.connection,
      topology: this.topology,
      namespace: this.namespace,
      options: this.options.events,
      publishTimeoutMs: this.options.publishTimeoutMs,
      logger: this.logger,
      send: (message, deadline) => this.publisher.send(message, deadline),
    });
    return this.events;
  }

  private async shutdown(): Promise<void> {
    await this.mailbox?.close().catch(() => {});
    for (const consumer of [...this.consumers]) await consumer.stop().catch(() => {});
    if (this.options.deleteOnClose) await this.events?.deleteAll().catch(() => {});
    await this.events?.close().catch(() => {});
    await this.fanout.close().catch(() => {});
    await this.publisher.close(Math.min(this.options.publishTimeoutMs, 5000));
    if (this.options.deleteOnClose) await this.topology.deleteAll();
    await this.topology.close();
    await this.connection.close();
  }

  onStatus(listener: (event: TransportStatusEvent) => void): () => void {
    return this.connection.onStatus(listener);
  }

  /** Not `async`: the promise of the publish itself is returned, without one more around it. */
  enqueue(queue: string, body: Bytes, options: EnqueueOptions): Promise<void> {
    let properties: Options.Publish;
    try {
      this.assertOpen();
      assertLogicalName(queue, "queue name");
      this.names.queue(queue);
      this.assertSize(body);
      properties = newMessageProperties(options.priority, options.headers);
    } catch (error) {
      return Promise.reject(error);
    }
    const content = asBuffer(body);
    if (this.connection.state === "idle") {
      return this.connect().then(() => this.enqueueConnected(queue, content, properties, options));
    }
    return this.enqueueConnected(queue, content, properties, options);
  }

  private enqueueConnected(
    queue: string,
    content: Buffer,
    properties: Options.Publish,
    options: EnqueueOptions,
  ): Promise<void> {
    const delayMs = options.delayMs ?? 0;
    if (options.dedupId === undefined) {
      if (delayMs === 0 && properties.headers === undefined && this.packer !== undefined) {
        return this.packer.add(queue, content, properties);
      }
      return this.sendTo(queue, content, properties, delayMs, Date.now() + this.options.publishTimeoutMs);
    }
    return this.dedup.run(`${queue}\u0000${options.dedupId}`, () =>
      this.sendTo(queue, content, properties, delayMs, Date.now() + this.options.publishTimeoutMs),
    );
  }

  async consume(
    queues: readonly string[],
    onDelivery: DeliveryHandler,
    options: ConsumeOptions,
  ): Promise<Consumer> {
    this.assertOpen();
    if (queues.length === 0) throw new ConfigError("consume() needs at least one queue name.");
    for (const queue of queues) {
      assertLogicalName(queue, "queue name");
      this.names.queue(queue);
    }
    await this.ready();
    const unique = [...new Set(queues)];
    const consumer =
      this.options.queueType === "quorum"
        ? new AmqpLevelConsumer(this, unique, onDelivery, options.concurrency)
        : new AmqpConsumer(this, unique, onDelivery, options.concurrency);
    this.consumers.add(consumer);
    try {
      await consumer.start();
    } catch (error) {
      await consumer.stop();
      throw asTransportError(error, `Could not consume ${queues.join(", ")}`);
    }
    return consumer;
  }

  /** Ready messages in the queue, plus those this process delayed that are not due yet. */
  async depth(queue: string): Promise<number> {
    this.assertOpen();
    assertLogicalName(queue, "queue name");
    this.names.queue(queue);
    await this.ready();
    const ready = await this.topology.depth(queue, Date.now() + this.options.publishTimeoutMs);
    // Ready messages are counted by the broker; a message may carry several tasks (an estimate from
    // what this process sent lately: exact for a queue fed by this process alone).
    const perMessage = this.packer?.tasksPerMessage(queue) ?? 1;
    return Math.round(ready * perMessage) + this.delayed.count(queue);
  }

  /**
   * Fan-out. In a worker (a transport with consumers), when at most one consumer holds
   * deliveries, the message goes on that consumer's channel without a publisher confirm: task
   * outcomes are published there and the ack that follows each one leaves after it on the same
   * channel, so the broker never takes the ack without the outcome, and nothing waits for a
   * confirm round trip. Otherwise (no consumer, several holding deliveries, flow control, the
   * exchange not declared yet) it goes through the confirm channel and resolves once the broker
   * confirmed it, so an ack on any channel can follow it.
   *
   * With `options.inbox` (a subscriber queue of this namespace), the message goes through the
   * default exchange straight to that queue: no topic match (about 35 µs less per hop, measured
   * here). A queue that is gone drops it, as the topic exchange would.
   */
  async publish(subject: string, body: Bytes, options?: PublishOptions): Promise<void> {
    this.assertOpen();
    assertLogicalName(subject, "subject");
    this.assertSize(body);
    const content = asBuffer(body);
    const inbox = options?.inbox;
    if (inbox !== undefined && this.names.isSubscriberQueue(inbox)) {
      return this.publishToInbox(inbox, subject, content);
    }
    const consumer = this.fanoutConsumer();
    if (consumer && !this.connection.blocked && this.topology.hasExchange(this.names.events)) {
      const sent = consumer.publishFanout(this.names.events, subject, content);
      if (sent) return sent;
    }
    await this.ready();
    const deadline = Date.now() + this.options.publishTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      await this.topology.ensureExchange(this.names.events, "topic", deadline).catch(asPublishError);
      try {
        return await this.publisher.send(
          { exchange: this.names.events, routingKey: subject, content, properties: { persistent: false } },
          deadline,
        );
      } catch (error) {
        if (!isUnroutable(error) || attempt >= 3) throw error;
        this.topology.forgetDeclarations(); // the exchange was deleted: declare it again
      }
    }
  }

  /**
   * publish() to one subscriber queue, through the default exchange: on the channel of the
   * consumer holding deliveries (ahead of the acks that follow) when there is one, else confirmed.
   * The routing key is the queue, so the subject travels in the `type` property.
   */
  private async publishToInbox(inbox: string, subject: string, content: Buffer): Promise<void> {
    const properties = { persistent: false, type: subject };
    const consumer = this.fanoutConsumer();
    if (consumer && !this.connection.blocked) {
      const sent = consumer.publishFanout("", inbox, content, properties);
      if (sent) return sent;
    }
    await this.ready();
    const message = { exchange: "", routingKey: inbox, content, properties };
    return this.publisher.send(message, Date.now() + this.options.publishTimeoutMs);
  }

  async subscribe(subject: string, onMessage: (message: FanoutMessage) => void): Promise<Subscription> {
    this.assertOpen();
    assertLogicalName(subject, "subject", true);
    await this.ready();
    try {
      return await this.fanout.subscribe(subject, onMessage);
    } catch (error) {
      throw asTransportError(error, `Could not subscribe to "${subject}"`);
    }
  }

  // ---- ConsumerHost ---------------------------------------------------------------------------

  async resend(
    message: ConsumeMessage,
    queue: string,
    target: ResendTarget,
    deliveries: number,
  ): Promise<void> {
    const deadline = Date.now() + this.options.publishTimeoutMs;
    const properties = copyProperties(message, deliveries);
    if (target.to === "dead") {
      properties.headers[DEAD_LETTER_REASON_HEADER] = target.reason;
      stampDeadLetter(properties, target.deliveries, randomUUID().replaceAll("-", ""));
      return this.sendTo(deadLetterQueueOf(queue), message.content, properties, 0, deadline);
    }
    const delayMs = target.to === "delay" ? target.delayMs : 0;
    return this.sendTo(queue, message.content, properties, delayMs, deadline);
  }

  /** Dead letters: list, inspect, retry, delete, purge, by bounded scans (see amqp-dead-letters.ts). */
  deadLetters(): DeadLetters {
    this.deadLetterStore ??= new AmqpDeadLetters({
      connection: this.connection,
      operationTimeoutMs: this.operationTimeoutMs,
      queueName: (logical) => this.names.queue(logical),
      send: async (queue, content, properties) => {
        this.assertOpen();
        await this.ready();
        return this.sendTo(queue, content, properties, 0, Date.now() + this.options.publishTimeoutMs);
      },
    });
    return this.deadLetterStore;
  }

  forget(consumer: Consumer): void {
    this.consumers.delete(consumer as AmqpConsumer);
  }

  // ---- internals ------------------------------------------------------------------------------

  /**
   * The consumer whose channel may carry a fan-out message without a confirm: the one holding
   * deliveries when no other consumer of this transport holds any (or any open one when none
   * does). An ack that will follow this message in program order is for a delivery in hand now,
   * so it goes on that channel, after it; a delivery received later has its own outcome
   * published later. Undefined when two consumers hold deliveries: publish with a confirm.
   */
  private fanoutConsumer(): AmqpConsumer | AmqpLevelConsumer | undefined {
    let holding: AmqpConsumer | AmqpLevelConsumer | undefined;
    let open: AmqpConsumer | AmqpLevelConsumer | undefined;
    for (const consumer of this.consumers) {
      if (consumer.inHand > 0) {
        if (holding) return undefined;
        holding = consumer;
      } else if (!open && consumer.open) open = consumer;
    }
    return holding ?? open;
  }

  /**
   * Publishes to a work queue (declared first), now or through the wait queue of a delay bucket.
   * Mandatory: if the broker finds no queue (deleted, or an expired wait queue), declare again and retry.
   * A queue this connection declared already is published to at once (no await before the publish).
   */
  private sendTo(
    queue: string,
    content: Buffer,
    properties: Options.Publish,
    delayMs: number,
    deadline: number,
  ): Promise<void> {
    if (delayMs > 0 || !this.topology.hasQueue(queue)) {
      return this.sendDeclared(queue, content, properties, delayMs, deadline);
    }
    const routingKey = this.names.routingKey(queue, properties.priority);
    return this.publisher
      .send({ exchange: "", routingKey, content, properties, mandatory: true }, deadline)
      .catch((error: unknown) => {
        if (!isUnroutable(error)) throw error;
        this.topology.forget(this.topology.keyOfQueue(queue));
        return this.sendDeclared(queue, content, properties, 0, deadline, 2);
      });
  }

  private async sendDeclared(
    queue: string,
    content: Buffer,
    properties: Options.Publish,
    delayMs: number,
    deadline: number,
    firstAttempt = 1,
  ): Promise<void> {
    const routingKey = this.names.routingKey(queue, properties.priority);
    for (let attempt = firstAttempt; ; attempt++) {
      await this.topology.ensureQueue(queue, deadline).catch(asPublishError);
      let exchange = "";
      let props = properties;
      let bucket = 0;
      if (delayMs > 0) {
        bucket = delayBucket(delayMs, this.options.delayBucketsMs);
        await this.topology.ensureWaitQueue(bucket, deadline).catch(asPublishError);
        exchange = this.names.delayExchange;
        const headers: Record<string, unknown> = { ...properties.headers, [H_DELAY]: String(bucket) };
        if (delayMs > bucket) headers[H_NOT_BEFORE] = String(Date.now() + delayMs);
        props = { ...properties, headers };
      }
      try {
        await this.publisher.send(
          { exchange, routingKey, content, properties: props, mandatory: true },
          deadline,
        );
        if (delayMs > 0) this.delayed.add(queue, Date.now() + Math.min(delayMs, bucket));
        return;
      } catch (error) {
        if (!isUnroutable(error) || attempt >= 3) throw error;
        this.topology.forget(this.topology.keyOfQueue(queue));
        if (bucket > 0) this.topology.forget(this.topology.keyOfWait(bucket));
      }
    }
  }

  private async ready(): Promise<void> {
    if (this.connection.state === "idle") await this.connect();
  }

  private assertOpen(): void {
    if (this.closing || this.connection.state === "closed") {
      throw new StateError("This AmqpTransport is closed; nothing can be sent or received on it.");
    }
  }

  private assertSize(body: Bytes): void {
    if (body.byteLength > this.maxPayloadBytes) {
      throw new PayloadTooLargeError(body.byteLength, this.maxPayloadBytes, "message");
    }
  }
}

/** amqplib takes Buffers; the codec's bodies are Buffers already, anything else is viewed as one. */
function asBuffer(body: Bytes): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** Errors of the client library become TransportErrors (retryable: the broker or network failed). */
function asTransportError(error: unknown, what: string): Error {
  if (error instanceof FastAgenticError) return error;
  return new TransportError(`${what}: ${(error as Error).message}`, { cause: error, retryable: true });
}

/** A declaration that failed on the way to a publish fails the publish (ConfigError and StateError stay). */
function asPublishError(error: unknown): never {
  if (error instanceof TransportError && !(error instanceof PublishError)) {
    throw new PublishError(`The message was not sent: ${error.message}`, { cause: error, retryable: true });
  }
  throw error;
}
