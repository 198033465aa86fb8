/**
 * The event log on NATS JetStream. Names (all under the namespace, apart from the work queues'
 * `<ns>.work.` and the fan-out's `<ns>.fan.` trees; stream and consumer names use "~", which no
 * queue, tag, type, group or namespace may contain, so they cannot collide by construction):
 *
 *   <ns>.ev.<p>.<type>       a durable event, p = its key's partition (0..7)      stream <ns>~events
 *   <ns>.evn.<type>          a `durable: false` event (core NATS, never stored)
 *   <ns>.evdl.<group>.<fp>   a group's dead letters (fp: the pattern's fingerprint) stream <ns>~events-dead
 *
 * The events stream has limits retention (max age / bytes / events): every group reads the same
 * messages, which work-queue retention forbids and interest retention would drop while a group
 * has no consumer. A group is a durable pull consumer `<group>~<fp>` filtered on its pattern
 * (DeliverPolicy from `from`); an ordered group is one consumer per partition, `<group>~<fp>~p<k>`,
 * each with MaxAckPending 1: one key's events one at a time, in order, whichever member pulls.
 */
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  jetstream,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos, headers as natsHeaders } from "@nats-io/transport-node";
import { ConfigError, describeThrown, StateError, TransportError } from "../../src/errors.js";
import {
  assertEventPattern,
  assertEventType,
  assertGroupName,
  type DeadEvent,
  EVENT_PARTITIONS,
  type EventDelivery,
  type EventGroupInfo,
  type EventLog,
  type EventRecord,
  type GroupMember,
  type GroupSpec,
  partitionOf,
  patternFingerprint,
} from "../event-log.js";
import { NatsEventMember, NatsLiveMember } from "./nats-event-member.js";
import { MSG_ID_HEADER, oneLine } from "./nats-headers.js";
import type { ResolvedNatsOptions } from "./nats-options.js";
import type { Outbox } from "./nats-outbox.js";
import { JetStreamPublisher } from "./nats-publisher.js";

/** What the event log needs of its transport's live connection. */
export interface EventConnection {
  nc: NatsConnection;
  outbox: Outbox;
  jsm: JetStreamManager;
}

const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;
const H_GROUP = "Fa-Group";
const H_PATTERN = "Fa-Pattern";
const H_TYPE = "Fa-Type";
const H_REASON = "Fa-Reason";
const H_TIME = "Fa-Time";

export class NatsEventNames {
  readonly stream: string;
  readonly deadStream: string;
  readonly prefix: string;
  constructor(readonly namespace: string) {
    this.stream = `${namespace}~events`;
    this.deadStream = `${namespace}~events-dead`;
    this.prefix = `${namespace}.ev.`;
  }
  subject(record: EventRecord): string {
    return `${this.prefix}${partitionOf(record)}.${record.type}`;
  }
  liveSubject(type: string): string {
    return `${this.namespace}.evn.${type}`;
  }
  /** What a live (non-durable) member subscribes to besides `filter(pattern)`. */
  liveFilter(pattern: string): string {
    return `${this.namespace}.evn.${pattern}`;
  }
  /** The filter of a group's consumer: every partition, or one. */
  filter(pattern: string, partition?: number): string {
    return `${this.prefix}${partition ?? "*"}.${pattern}`;
  }
  /** The event type of a message received on `subject`. */
  typeOf(subject: string): string {
    const live = `${this.namespace}.evn.`;
    if (subject.startsWith(live)) return subject.slice(live.length);
    const afterPartition = subject.indexOf(".", this.prefix.length);
    return subject.slice(afterPartition + 1);
  }
  consumer(group: string, pattern: string, partition?: number): string {
    const base = `${group}~${patternFingerprint(pattern)}`;
    return partition === undefined ? base : `${base}~p${partition}`;
  }
  deadSubject(group: string, pattern: string): string {
    return `${this.namespace}.evdl.${group}.${patternFingerprint(pattern)}`;
  }
}

export class NatsEventLog implements EventLog {
  readonly names: NatsEventNames;
  private publisher?: JetStreamPublisher;
  private publisherOf?: EventConnection;
  private streams?: Promise<void>;
  private readonly members = new Set<NatsEventMember | NatsLiveMember>();

  constructor(
    private readonly connection: () => EventConnection,
    private readonly options: ResolvedNatsOptions,
    private readonly isConnected: () => boolean,
  ) {
    this.names = new NatsEventNames(options.namespace);
  }

  get ackDeadlineMs(): number {
    return this.options.ackWaitMs;
  }

  async append(record: EventRecord): Promise<void> {
    assertEventType(record.type);
    const conn = this.connection();
    await this.ensureStreamsPatiently();
    const h = natsHeaders();
    h.set(MSG_ID_HEADER, record.id);
    await this.publisherFor(conn).publish(
      `event "${record.type}"`,
      this.names.subject(record),
      record.body,
      h,
    );
  }

  async notify(record: EventRecord): Promise<void> {
    assertEventType(record.type);
    const conn = this.connection();
    if (!conn.outbox.open) throw new StateError("The NATS connection is closed; the event was not sent.");
    conn.outbox.send(this.names.liveSubject(record.type), record.body);
  }

  async join(spec: GroupSpec, onEvent: (delivery: EventDelivery) => void): Promise<GroupMember> {
    assertGroupName(spec.group);
    assertEventPattern(spec.pattern);
    const conn = this.connection();
    if (!spec.durable) {
      const live = new NatsLiveMember(conn, this.names, spec, onEvent, (d, reason) =>
        this.storeDeadLetter(spec, d.type, d.body, reason, `dl-live-${Date.now()}-${Math.random()}`),
      );
      this.members.add(live);
      await live.start();
      return { close: async () => this.forget(live, live.close()) };
    }
    await this.ensureStreams();
    const consumers = await this.ensureGroup(conn.jsm, spec);
    const member = new NatsEventMember({
      conn: () => this.connection(),
      names: this.names,
      spec,
      consumers,
      onEvent,
      connected: this.isConnected,
      ensure: async () => {
        this.streams = undefined;
        await this.ensureStreams();
        await this.ensureGroup(this.connection().jsm, spec);
      },
      deadLetter: (d, reason) => this.storeDeadLetter(spec, d.type, d.body, reason, `dl-${d.sequence}`),
    });
    this.members.add(member);
    member.start();
    return { close: async () => this.forget(member, member.close()) };
  }

  async groups(): Promise<EventGroupInfo[]> {
    const { jsm } = this.connection();
    const byName = new Map<string, EventGroupInfo>();
    let dead: Record<string, number> = {};
    try {
      const info = await jsm.streams.info(this.names.deadStream, {
        subjects_filter: `${this.names.namespace}.evdl.>`,
      });
      dead = info.state.subjects ?? {};
    } catch (error) {
      if (!isApiError(error, STREAM_NOT_FOUND)) throw asTransportError(error, "reading the dead letters");
    }
    try {
      for await (const c of jsm.consumers.list(this.names.stream)) {
        const meta = describedGroup(c);
        if (!meta) continue;
        const key = `${meta.group}\u0000${meta.pattern}`;
        const known = byName.get(key);
        if (known) {
          known.pending = (known.pending ?? 0) + c.num_pending;
          known.inFlight = (known.inFlight ?? 0) + c.num_ack_pending;
          continue;
        }
        byName.set(key, {
          group: meta.group,
          pattern: meta.pattern,
          ordered: meta.ordered,
          durable: true,
          pending: c.num_pending,
          inFlight: c.num_ack_pending,
          deadLetters: dead[this.names.deadSubject(meta.group, meta.pattern)] ?? 0,
          members: undefined,
        });
      }
    } catch (error) {
      if (!isApiError(error, STREAM_NOT_FOUND)) throw asTransportError(error, "listing the event groups");
    }
    return [...byName.values()];
  }

  async deadLetters(group: string, pattern: string, limit: number): Promise<DeadEvent[]> {
    const { nc, jsm } = this.connection();
    const subject = this.names.deadSubject(group, pattern);
    const out: DeadEvent[] = [];
    let name: string | undefined;
    try {
      // An ephemeral consumer over the group's dead-letter subject (NATS 2.9 has one filter per consumer).
      const created = await jsm.consumers.add(this.names.deadStream, {
        ack_policy: AckPolicy.None,
        filter_subject: subject,
        deliver_policy: DeliverPolicy.All,
        inactive_threshold: nanos(30_000),
      });
      name = created.name;
      let left = created.num_pending;
      if (left > 0) {
        const consumer = await jetstream(nc).consumers.get(this.names.deadStream, name);
        const messages = await consumer.fetch({ max_messages: left, expires: 5000 });
        for await (const m of messages) {
          const h = m.headers;
          out.push({
            group,
            pattern,
            type: h?.get(H_TYPE) ?? "",
            body: m.data,
            reason: h?.get(H_REASON) ?? "",
            time: Number(h?.get(H_TIME) ?? 0),
          });
          if (--left <= 0) break;
        }
      }
    } catch (error) {
      if (isApiError(error, STREAM_NOT_FOUND)) return [];
      throw asTransportError(error, "reading the dead letters");
    } finally {
      if (name !== undefined) await jsm.consumers.delete(this.names.deadStream, name).catch(() => {});
    }
    return out.slice(-limit);
  }

  async deleteGroup(group: string, pattern: string): Promise<boolean> {
    const { jsm } = this.connection();
    let deleted = false;
    const names = [this.names.consumer(group, pattern)];
    for (let p = 0; p < EVENT_PARTITIONS; p++) names.push(this.names.consumer(group, pattern, p));
    for (const name of names) {
      try {
        deleted = (await jsm.consumers.delete(this.names.stream, name)) || deleted;
      } catch (error) {
        if (!isApiError(error, CONSUMER_NOT_FOUND) && !isApiError(error, STREAM_NOT_FOUND)) {
          throw asTransportError(error, `deleting the group "${group}"`);
        }
      }
    }
    await jsm.streams
      .purge(this.names.deadStream, { filter: this.names.deadSubject(group, pattern) })
      .catch(() => {});
    return deleted;
  }

  // ---- called by the transport ------------------------------------------------------------------

  tick(now: number): void {
    this.publisher?.tick(now);
    for (const m of this.members) m.tick(now);
  }

  onDisconnect(): void {
    for (const m of this.members) m.onDisconnect();
  }

  /**
   * In a cluster, the events stream (`consumer` undefined) or a group's consumer has a new leader:
   * publishes and pulls sent to the old one get no answer, so they go to the new one at once.
   */
  onLeaderElected(stream: string, consumer?: string): void {
    if (stream !== this.names.stream) return;
    if (consumer === undefined) this.publisher?.resendWhere(() => true);
    else for (const m of this.members) if (m instanceof NatsEventMember) m.onLeaderElected(consumer);
  }

  onReconnect(): void {
    this.streams = undefined;
    this.publisher?.resendAll();
    for (const m of this.members) m.onReconnect();
  }

  async close(): Promise<void> {
    await Promise.all([...this.members].map((m) => m.close()));
    await this.publisher?.whenIdle(2000);
    this.publisher?.stop();
  }

  /** Deletes the event streams of the namespace (tests, teardown). */
  async deleteStreams(): Promise<void> {
    const { jsm } = this.connection();
    for (const name of [this.names.stream, this.names.deadStream]) {
      await jsm.streams.delete(name).catch(() => {});
    }
    this.streams = undefined;
  }

  // ---- internals ----------------------------------------------------------------------------------

  private async forget(member: NatsEventMember | NatsLiveMember, closing: Promise<void>): Promise<void> {
    await closing;
    this.members.delete(member);
  }

  private publisherFor(conn: EventConnection): JetStreamPublisher {
    if (!this.publisher || this.publisherOf !== conn) {
      this.publisher?.stop();
      this.publisherOf = conn;
      this.publisher = new JetStreamPublisher(conn.nc, conn.outbox, {
        timeoutMs: this.options.publishTimeoutMs,
        attempts: this.options.publishAttempts,
        onMissingStream: () => {
          this.streams = undefined;
          this.ensureStreams().catch(() => {});
        },
      });
    }
    return this.publisher;
  }

  /**
   * ensureStreams() for a publish: a cluster electing a leader, or a minority, answers "unavailable"
   * or nothing; it is asked again for the publish budget (publishTimeoutMs × publishAttempts).
   */
  private async ensureStreamsPatiently(): Promise<void> {
    const giveUpAt = Date.now() + this.options.publishTimeoutMs * this.options.publishAttempts;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.ensureStreams();
      } catch (error) {
        if (!(error instanceof TransportError && error.retryable) || Date.now() >= giveUpAt) throw error;
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  }

  private ensureStreams(): Promise<void> {
    this.streams ??= this.createStreams().catch((error: unknown) => {
      this.streams = undefined;
      throw asTransportError(error, "creating the event streams");
    });
    return this.streams;
  }

  private async createStreams(): Promise<void> {
    const { jsm } = this.connection();
    const o = this.options;
    const e = o.events;
    const storage = o.storage === "memory" ? StorageType.Memory : StorageType.File;
    // One subject tree: NATS 2.9 accepts a consumer filter with a wildcard partition only as a subset of one stream subject.
    const subjects = [`${this.names.prefix}>`];
    await addStream(jsm, {
      name: this.names.stream,
      subjects,
      retention: RetentionPolicy.Limits,
      storage,
      num_replicas: o.replicas,
      max_age: nanos(e.maxAgeMs),
      max_bytes: e.maxBytes,
      max_msgs: e.maxEvents,
      duplicate_window: nanos(Math.min(e.duplicateWindowMs, e.maxAgeMs)),
      discard: DiscardPolicy.Old,
      description: "fastagentic event log",
    });
    await addStream(jsm, {
      name: this.names.deadStream,
      subjects: [`${this.names.namespace}.evdl.>`],
      retention: RetentionPolicy.Limits,
      storage,
      num_replicas: o.replicas,
      max_msgs_per_subject: e.maxDeadLetters,
      discard: DiscardPolicy.Old,
      description: "fastagentic event dead letters",
    });
  }

  /** The group's consumer(s), created when missing: one, or one per partition when ordered. */
  private async ensureGroup(jsm: JetStreamManager, spec: GroupSpec): Promise<string[]> {
    const partitions: Array<number | undefined> = spec.ordered
      ? [...Array(EVENT_PARTITIONS).keys()]
      : [undefined];
    const names: string[] = [];
    for (const partition of partitions) {
      const name = this.names.consumer(spec.group, spec.pattern, partition);
      const filter = this.names.filter(spec.pattern, partition);
      names.push(name);
      const existing = await consumerInfo(jsm, this.names.stream, name);
      if (existing) {
        if (existing.config.filter_subject !== filter) {
          throw new ConfigError(
            `The event group "${spec.group}" has a consumer "${name}" for another pattern ` +
              `(${existing.config.filter_subject}). Delete the group (EventBus.deleteGroup) or use another group name.`,
          );
        }
        continue;
      }
      const config: Partial<ConsumerConfig> = {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(this.options.ackWaitMs),
        max_ack_pending: spec.ordered ? 1 : this.options.maxAckPending,
        max_deliver: -1,
        filter_subject: filter,
        description: JSON.stringify({ group: spec.group, pattern: spec.pattern, ordered: spec.ordered }),
        ...deliverPolicy(spec),
      };
      if (this.options.maxWaiting !== undefined) config.max_waiting = this.options.maxWaiting;
      try {
        await jsm.consumers.add(this.names.stream, config);
      } catch (error) {
        // Another member created it meanwhile: fine if it exists now.
        if (!(await consumerInfo(jsm, this.names.stream, name))) {
          throw asTransportError(error, `creating the event group "${spec.group}"`);
        }
      }
    }
    return names;
  }

  private async storeDeadLetter(
    spec: GroupSpec,
    type: string,
    body: Uint8Array,
    reason: string,
    id: string,
  ): Promise<void> {
    const conn = this.connection();
    await this.ensureStreams();
    const h = natsHeaders();
    h.set(MSG_ID_HEADER, `${id}-${spec.group}~${patternFingerprint(spec.pattern)}`);
    h.set(H_GROUP, spec.group);
    h.set(H_PATTERN, spec.pattern);
    h.set(H_TYPE, type);
    h.set(H_REASON, oneLine(reason, 2000));
    h.set(H_TIME, String(Date.now()));
    await this.publisherFor(conn).publish(
      `dead letters of "${spec.group}"`,
      this.names.deadSubject(spec.group, spec.pattern),
      body,
      h,
    );
  }
}

function deliverPolicy(spec: GroupSpec): Partial<ConsumerConfig> {
  const from = spec.from;
  if (from === "new") return { deliver_policy: DeliverPolicy.New };
  if (from === "all") return { deliver_policy: DeliverPolicy.All };
  if ("sequence" in from)
    return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from.sequence };
  return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(from.time).toISOString() };
}

function describedGroup(c: ConsumerInfo): { group: string; pattern: string; ordered: boolean } | undefined {
  try {
    const meta = JSON.parse(c.config.description ?? "") as {
      group?: unknown;
      pattern?: unknown;
      ordered?: unknown;
    };
    if (typeof meta.group !== "string" || typeof meta.pattern !== "string") return undefined;
    return { group: meta.group, pattern: meta.pattern, ordered: meta.ordered === true };
  } catch {
    return undefined;
  }
}

async function addStream(jsm: JetStreamManager, config: Parameters<JetStreamManager["streams"]["add"]>[0]) {
  try {
    await jsm.streams.info(config.name as string);
    return; // exists: its retention is whatever it was created with
  } catch (error) {
    if (!isApiError(error, STREAM_NOT_FOUND)) throw error;
  }
  try {
    await jsm.streams.add(config);
  } catch (error) {
    // Created by another process meanwhile.
    await jsm.streams.info(config.name as string).catch(() => {
      throw error;
    });
  }
}

async function consumerInfo(
  jsm: JetStreamManager,
  stream: string,
  name: string,
): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(stream, name);
  } catch (error) {
    if (isApiError(error, CONSUMER_NOT_FOUND)) return undefined;
    throw error;
  }
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

function asTransportError(error: unknown, what: string): Error {
  if (error instanceof TransportError || error instanceof ConfigError) return error;
  return new TransportError(`NATS event log: ${what} failed: ${describeThrown(error)}`, {
    cause: error,
    retryable: true,
  });
}
