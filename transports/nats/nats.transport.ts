/**
 * The NATS transport: work queues on JetStream (work-queue streams, explicit ack, one subject and
 * durable pull consumer per priority level), fan-out on core NATS, everything under a namespace.
 * See transports/nats/README.md for the delivery guarantees and their limits.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import {
  type NatsConnection,
  type Subscription as NatsSubscription,
  headers as natsHeaders,
  nuid,
} from "@nats-io/transport-node";
import {
  ConfigError,
  ConnectionError,
  PayloadTooLargeError,
  StateError,
  ValidationError,
} from "../../src/errors.js";
import { getDefaultLogger } from "../../src/logger.js";
import { DEAD_LETTER_AT_HEADER, DEAD_LETTER_DELIVERIES_HEADER, type DeadLetters } from "../dead-letters.js";
import type { DeliveryRelease } from "../delivery-release.js";
import type { EntityMailbox } from "../entity-mailbox.js";
import type { FinishedRecord } from "../finished-record.js";
import type { StateStore } from "../state-store.js";
import {
  assertLogicalName,
  type Bytes,
  type Consumer,
  DEAD_LETTER_REASON_HEADER,
  type DeliveryHandler,
  deadLetterQueueOf,
  type EnqueueOptions,
  type FanoutMessage,
  type Subscription,
  type Transport,
  type TransportState,
  type TransportStatusEvent,
} from "../transport.js";
import { openConnection, ReconnectBackoff } from "./nats-connection.js";
import { type ConsumerLink, NatsConsumer } from "./nats-consumer.js";
import { NatsDeadLetters } from "./nats-dead-letters.js";
import { DeliveryCorrections, type NatsDelivery } from "./nats-delivery.js";
import { NatsDeliveryRelease } from "./nats-delivery-release.js";
import { NatsEntityMailbox } from "./nats-entity-mailbox.js";
import { NatsEventLog } from "./nats-event-log.js";
import { deleteFinishedBucket, NatsFinishedRecord } from "./nats-finished-record.js";
import {
  MSG_ID_HEADER,
  NOT_BEFORE_HEADER,
  oneLine,
  PRIORITY_HEADER,
  setUserHeaders,
} from "./nats-headers.js";
import { watchLeaders } from "./nats-leaders.js";
import { levelOf, NatsNames, PRIORITY_LEVELS } from "./nats-names.js";
import {
  HEADER_ROOM_BYTES,
  type NatsTransportOptions,
  type ResolvedNatsOptions,
  resolveNatsOptions,
} from "./nats-options.js";
import { Outbox } from "./nats-outbox.js";
import { JetStreamPublisher } from "./nats-publisher.js";
import { type NatsEntityLink, NatsStateStore } from "./nats-state-store.js";
import { NatsTopology } from "./nats-topology.js";

const TICK_MS = 250;

interface Connected {
  nc: NatsConnection;
  outbox: Outbox;
  jsm: JetStreamManager;
  publisher: JetStreamPublisher;
  topology: NatsTopology;
  ticker: ReturnType<typeof setInterval>;
  /** Stops watching leader elections (a cluster, replicas > 1). */
  unwatch: () => void;
}

export class NatsTransport implements Transport {
  readonly kind = "nats";
  readonly options: ResolvedNatsOptions;
  readonly names: NatsNames;

  private conn?: Connected;
  private connecting?: Promise<void>;
  private closing?: Promise<void>;
  private _state: TransportState = "idle";
  private serverMaxPayload?: number;
  private readonly backoff: ReconnectBackoff;
  private readonly listeners = new Set<(e: TransportStatusEvent) => void>();
  private readonly consumers = new Set<NatsConsumer>();
  private readonly subscriptions = new Set<NatsSubscription>();
  private readonly corrections = new DeliveryCorrections();
  private events?: NatsEventLog;
  private mailbox?: NatsEntityMailbox;
  private store?: NatsStateStore;
  private deadLetterStore?: NatsDeadLetters;
  private release?: NatsDeliveryRelease;
  private finished?: NatsFinishedRecord;

  constructor(options: NatsTransportOptions = {}) {
    this.options = resolveNatsOptions(options);
    this.names = new NatsNames(this.options.namespace);
    this.backoff = new ReconnectBackoff(this.options);
  }

  get namespace(): string {
    return this.options.namespace;
  }

  get state(): TransportState {
    return this._state;
  }

  get maxPayloadBytes(): number {
    const limit = (this.serverMaxPayload ?? 1024 * 1024) - HEADER_ROOM_BYTES;
    return Math.min(this.options.maxPayloadBytes ?? limit, limit);
  }

  get ackDeadlineMs(): number {
    return this.options.ackWaitMs;
  }

  onStatus(listener: (event: TransportStatusEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  connect(): Promise<void> {
    if (this.closing) return Promise.reject(this.closedError());
    if (this.conn) return Promise.resolve();
    this.connecting ??= this.open().catch((error: unknown) => {
      this.connecting = undefined;
      if (!this.closing) this.setState("idle", error as Error);
      throw error;
    });
    return this.connecting;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  async enqueue(queue: string, body: Bytes, options: EnqueueOptions): Promise<void> {
    const conn = this.live();
    assertLogicalName(queue, "queue name");
    this.assertSize(body);
    const priority = options.priority;
    if (!Number.isInteger(priority) || priority < 0 || priority > 255) {
      throw new ValidationError(
        `Invalid priority ${JSON.stringify(priority)}: use an integer from 0 to 255.`,
      );
    }
    const level = levelOf(priority);
    const h = natsHeaders();
    h.set(MSG_ID_HEADER, options.dedupId ?? nuid.next());
    // A priority at the bottom of its level (every TaskPriority) is what the level says already.
    if (priority !== PRIORITY_LEVELS[level]) h.set(PRIORITY_HEADER, String(priority));
    if (options.delayMs !== undefined && options.delayMs > 0) {
      h.set(NOT_BEFORE_HEADER, String(Date.now() + Math.round(options.delayMs)));
    }
    if (options.headers) setUserHeaders(h, options.headers);
    await conn.topology.ensure(queue);
    await conn.publisher.publish(queue, this.names.workSubject(queue, level), body, h);
  }

  async consume(
    queues: readonly string[],
    onDelivery: DeliveryHandler,
    options: { concurrency: number },
  ): Promise<Consumer> {
    const conn = this.live();
    for (const q of queues) assertLogicalName(q, "queue name");
    if (!Number.isInteger(options.concurrency) || options.concurrency < 0) {
      throw new ConfigError(
        `consume(): concurrency must be an integer ≥ 0, got ${JSON.stringify(options.concurrency)}.`,
      );
    }
    const consumer = new NatsConsumer(this.link(conn), [...new Set(queues)], onDelivery, options.concurrency);
    this.consumers.add(consumer);
    try {
      await consumer.start();
    } catch (error) {
      await consumer.stop();
      throw error;
    }
    return consumer;
  }

  async depth(queue: string): Promise<number> {
    const conn = this.live();
    assertLogicalName(queue, "queue name");
    return conn.topology.depth(queue);
  }

  async publish(subject: string, body: Bytes): Promise<void> {
    const conn = this.live();
    assertLogicalName(subject, "subject");
    this.assertSize(body);
    if (!conn.outbox.open) {
      throw new ConnectionError(`Could not publish on "${subject}": the NATS connection is closed.`);
    }
    // Leaves with whatever else this turn sends (e.g. the ack that follows a task's outcome).
    conn.outbox.send(this.names.fanSubject(subject), body);
  }

  async subscribe(subject: string, onMessage: (message: FanoutMessage) => void): Promise<Subscription> {
    const conn = this.live();
    assertLogicalName(subject, "subject", true);
    const sub = conn.nc.subscribe(this.names.fanSubject(subject), {
      callback: (_err, msg) => {
        const message = { subject: this.names.logicalFanSubject(msg.subject), body: msg.data };
        try {
          onMessage(message);
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      },
    });
    this.subscriptions.add(sub);
    // Once the server has it, a publish from any process reaches it.
    conn.outbox.flush();
    await conn.nc.flush().catch(() => {});
    return {
      unsubscribe: async () => {
        this.subscriptions.delete(sub);
        if (!sub.isClosed()) sub.unsubscribe();
      },
    };
  }

  /** The event log (EventBus) on this connection: JetStream streams `<ns>~events` and `<ns>~events-dead`. */
  eventLog(): NatsEventLog {
    this.events ??= new NatsEventLog(
      () => this.live(),
      this.options,
      () => this._state === "connected",
    );
    return this.events;
  }

  /** Entity mailboxes on JetStream (streams `<ns>~ent~<type>`, leases in KV). */
  entityMailbox(): EntityMailbox {
    this.mailbox ??= new NatsEntityMailbox(
      () => this.entityLink(),
      (error, what) =>
        this.warn(`entity mailbox: ${what}: ${error instanceof Error ? error.message : String(error)}`),
    );
    return this.mailbox;
  }

  /** Entity state in the JetStream KV bucket `fa_state_<namespace>`. */
  stateStore(): StateStore {
    this.store ??= new NatsStateStore(() => this.entityLink());
    return this.store;
  }

  private entityLink(): NatsEntityLink {
    const conn = this.live();
    const o = this.options;
    return {
      nc: conn.nc,
      namespace: o.namespace,
      storage: o.storage,
      replicas: o.replicas,
      maxPayloadBytes: this.maxPayloadBytes,
      timeoutMs: o.publishTimeoutMs,
      publishAttempts: o.publishAttempts,
    };
  }

  private warn(message: string): void {
    getDefaultLogger().warn({ transport: "nats", namespace: this.options.namespace }, message);
  }

  /** Dead letters: list, inspect, retry, delete, purge (transports/dead-letters.ts). */
  deadLetters(): DeadLetters {
    this.deadLetterStore ??= new NatsDeadLetters({
      names: this.names,
      jsm: () => this.live().jsm,
      enqueue: (queue, body, options) => this.enqueue(queue, body, options),
    });
    return this.deadLetterStore;
  }

  /** Messages waiting in `queue` by priority (each level's pending count, keyed by its lowest value). */
  async depthByPriority(queue: string): Promise<Record<number, number>> {
    const conn = this.live();
    assertLogicalName(queue, "queue name");
    return conn.topology.depthByLevel(queue, PRIORITY_LEVELS);
  }

  /** Deliveries of a worker declared dead, sent back from another process (delivery-release.ts). */
  deliveryRelease(): DeliveryRelease {
    this.release ??= new NatsDeliveryRelease({
      names: this.names,
      ackWaitMs: this.options.ackWaitMs,
      idlePullMs: this.options.idlePullMs,
      live: () => {
        const conn = this.live();
        return { outbox: conn.outbox, flush: () => conn.nc.flush() };
      },
    });
    return this.release;
  }

  /** The record of finished tasks: the KV bucket `fa_done_<namespace>` (none with finishedTtlMs 0). */
  finishedRecord(): FinishedRecord | undefined {
    if (this.options.finishedTtlMs === 0) return undefined;
    this.finished ??= new NatsFinishedRecord(() => this.entityLink(), this.options.finishedTtlMs);
    return this.finished;
  }

  /** The NATS subject of one priority level of a queue (for tools that publish to it directly). */
  subjectOf(queue: string, priority: number): string {
    assertLogicalName(queue, "queue name");
    return this.names.workSubject(queue, levelOf(priority));
  }

  /** Deletes every stream (and consumer) of this transport's namespace. For tests and teardown. */
  async deleteStreams(): Promise<void> {
    await this.live().topology.deleteNamespace();
    await this.events?.deleteStreams();
  }

  // ---- connection -------------------------------------------------------------------------------

  private async open(): Promise<void> {
    this.setState("connecting");
    const { nc, jsm, serverMaxPayload } = await openConnection(this.options, this.backoff);
    if (this.closing) {
      await nc.close().catch(() => {});
      throw this.closedError();
    }
    this.serverMaxPayload = serverMaxPayload;
    const topology = new NatsTopology(jsm, this.names, this.options);
    const outbox = new Outbox(nc);
    const publisher = new JetStreamPublisher(nc, outbox, {
      timeoutMs: this.options.publishTimeoutMs,
      attempts: this.options.publishAttempts,
      // No stream answered: deleted, the server lost its store (create it again before the
      // re-send), or a cluster electing the stream's leader (wait).
      onMissingStream: (queue) => void topology.verify(queue).catch(() => {}),
    });
    const ticker = setInterval(() => this.tick(), TICK_MS);
    ticker.unref();
    const unwatch = this.options.replicas > 1 ? this.watchLeaders(nc, publisher) : () => {};
    this.conn = { nc, outbox, jsm, publisher, topology, ticker, unwatch };
    void this.watch(nc);
    this.setState("connected");
  }

  private async watch(nc: NatsConnection): Promise<void> {
    void nc.closed().then((error) => {
      if (!this.closing) {
        // Closed by the server or the client gave up (e.g. authorization revoked).
        this.setState("closed", error instanceof Error ? error : undefined);
        void this.close();
      }
    });
    for await (const status of nc.status()) {
      if (this.closing) return;
      if (status.type === "disconnect") {
        for (const c of this.consumers) c.onDisconnect();
        this.events?.onDisconnect();
        this.mailbox?.disconnected();
        this.setState("reconnecting");
      } else if (status.type === "reconnect") {
        this.backoff.reset();
        // Streams the server lost show up as publishes and pulls nobody answers (then verified).
        this.conn?.publisher.resendAll();
        this.mailbox?.reconnected();
        for (const c of this.consumers) c.onReconnect();
        this.events?.onReconnect();
        this.setState("connected");
      }
    }
  }

  /**
   * In a cluster: publishes and pulls waiting on a dead leader go to the new one when elected
   * (work queues' streams `<ns>_…`, the event log `<ns>~events`), and an entity partition's holder
   * starts a new epoch when its consumer's leader changes (`<ns>~ent~…`).
   */
  private watchLeaders(nc: NatsConnection, publisher: JetStreamPublisher): () => void {
    return watchLeaders(nc, this.namespace, {
      streamLeader: (stream) => {
        if (this.names.ownsStream(stream))
          publisher.resendWhere((queue) => this.names.streamName(queue) === stream);
        else this.events?.onLeaderElected(stream);
      },
      consumerLeader: (stream, consumer) => {
        if (this.names.ownsStream(stream))
          for (const c of this.consumers) c.onLeaderElected(stream, consumer);
        else {
          this.events?.onLeaderElected(stream, consumer);
          this.mailbox?.onLeaderElected(stream, consumer);
        }
      },
    });
  }

  private tick(): void {
    const now = Date.now();
    this.conn?.publisher.tick(now);
    for (const c of this.consumers) c.tick(now);
    this.events?.tick(now);
  }

  private async shutdown(): Promise<void> {
    await this.connecting?.catch(() => {});
    const conn = this.conn;
    await this.mailbox?.close().catch(() => {});
    for (const c of [...this.consumers]) await c.stop();
    await this.events?.close().catch(() => {});
    for (const sub of this.subscriptions) if (!sub.isClosed()) sub.unsubscribe();
    this.subscriptions.clear();
    if (conn) {
      await conn.publisher.whenIdle(2000);
      conn.publisher.failAll(this.closedError());
      if (this.options.streamsOnClose === "delete") {
        await conn.topology.deleteUsed().catch(() => {});
        await this.events?.deleteStreams().catch(() => {});
        // Whichever process wrote to it (the workers), the record goes with the namespace's streams.
        if (this.options.finishedTtlMs > 0)
          await deleteFinishedBucket(conn.nc, this.options.namespace).catch(() => {});
      }
      conn.publisher.stop();
      conn.topology.stop();
      conn.unwatch();
      clearInterval(conn.ticker);
      // Settlements (the naks of stopped consumers) leave before the socket closes.
      conn.outbox.flush();
      if (this._state === "connected") await withTimeout(conn.nc.flush(), 2000).catch(() => {});
      await conn.nc.close().catch(() => {});
    }
    this.setState("closed");
  }

  private link(conn: Connected): ConsumerLink {
    return {
      nc: conn.nc,
      outbox: conn.outbox,
      options: this.options,
      corrections: this.corrections,
      connected: () => this._state === "connected",
      ensure: (queue) => conn.topology.ensure(queue),
      verify: (queue) => conn.topology.verify(queue),
      publishDeadLetter: (d, reason) => this.publishDeadLetter(conn, d, reason),
      forget: (consumer) => this.consumers.delete(consumer),
    };
  }

  private async publishDeadLetter(conn: Connected, d: NatsDelivery, reason: string): Promise<void> {
    const dlq = deadLetterQueueOf(d.queue);
    assertLogicalName(dlq, "dead-letter queue name");
    const h = natsHeaders();
    setUserHeaders(h, d.headers, true);
    h.set(DEAD_LETTER_REASON_HEADER, oneLine(reason, 2000));
    h.set(DEAD_LETTER_DELIVERIES_HEADER, String(d.deliveryCount));
    h.set(DEAD_LETTER_AT_HEADER, String(Date.now()));
    const level = levelOf(d.priority);
    if (d.priority !== PRIORITY_LEVELS[level]) h.set(PRIORITY_HEADER, String(d.priority));
    h.set(MSG_ID_HEADER, `dl-${d.info.stream}-${d.info.streamSeq}`);
    await conn.topology.ensure(dlq);
    await conn.publisher.publish(dlq, this.names.workSubject(dlq, level), d.body, h);
  }

  // ---- helpers ----------------------------------------------------------------------------------

  /** The connection, or a StateError saying why there is none. */
  private live(): Connected {
    if (this.closing) throw this.closedError();
    if (!this.conn) {
      throw new StateError("This NatsTransport is not connected; call connect() first.");
    }
    return this.conn;
  }

  private closedError(): StateError {
    return new StateError(
      "This NatsTransport is closed; nothing can be sent or received on it. Create a new one.",
    );
  }

  private assertSize(body: Bytes): void {
    if (body.byteLength > this.maxPayloadBytes) {
      throw new PayloadTooLargeError(body.byteLength, this.maxPayloadBytes, "message");
    }
  }

  private setState(state: TransportState, error?: Error): void {
    if (this._state === "closed") return;
    const changed = this._state !== state;
    this._state = state;
    if (!changed && error === undefined) return;
    const event: TransportStatusEvent = error ? { state, error } : { state };
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([promise, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
}
