/**
 * The event log on RabbitMQ. Names start with the namespace and ":" (which no queue, tag, type,
 * group or namespace may contain), so they cannot collide with work queues by construction:
 *
 *   <ns>:ev                 topic exchange; routing key `d.<type>` (durable) or `n.<type>` (live)
 *   <ns>:ev.log             stream queue (x-queue-type stream) bound to `d.#`: what replays read
 *   <ns>:ev.g.<group>.<fp>  one durable classic queue per group (fp: its pattern's fingerprint),
 *                           bound to `d.<pattern>`; x-single-active-consumer when ordered
 *   <ns>:ev.dead.<group>.<fp>  the group's dead letters (declared at the first one)
 *   <ns>:ev.live.<group>.<fp>  a non-durable group: auto-delete queue bound to `*.<pattern>`
 *   <ns>:ev.groups          the registry of durable groups (one message per group), for groups()
 *
 * Publishes are confirmed (the stream and every bound group queue have the event). RabbitMQ has
 * no de-duplication: an id re-sent from this process within the window is sent once.
 */
import type { Channel, ConfirmChannel, GetMessage, Options } from "amqplib";
import { describeThrown, TransportError } from "../../src/errors.js";
import type { Logger } from "../../src/logger.js";
import {
  assertEventPattern,
  assertEventType,
  assertGroupName,
  type DeadEvent,
  type EventDelivery,
  type EventGroupInfo,
  type EventLog,
  type EventRecord,
  type GroupMember,
  type GroupSpec,
  patternFingerprint,
  type ResolvedEventLogOptions,
} from "../event-log.js";
import type { AmqpConnection } from "./amqp-connection.js";
import { AmqpEventMember } from "./amqp-event-member.js";
import { StreamReplay } from "./amqp-event-replay.js";
import type { OutgoingMessage } from "./amqp-publisher.js";
import type { AmqpTopology } from "./amqp-topology.js";
import { SendOnce } from "./amqp-tracking.js";

export const H_REASON = "x-fa-reason";
export const H_TIME = "x-fa-dead-at";
export const H_SEQ = "x-fa-seq";
export const H_MARKER = "x-fa-marker";
const H_GROUP = "x-fa-group";
const H_PATTERN = "x-fa-pattern";
const H_ORDERED = "x-fa-ordered";

export interface AmqpEventLink {
  connection: AmqpConnection;
  topology: AmqpTopology;
  namespace: string;
  options: ResolvedEventLogOptions;
  publishTimeoutMs: number;
  logger: Logger;
  send(message: OutgoingMessage, deadline: number): Promise<void>;
}

export class AmqpEventNames {
  readonly exchange: string;
  readonly stream: string;
  readonly registry: string;
  constructor(readonly namespace: string) {
    this.exchange = `${namespace}:ev`;
    this.stream = `${namespace}:ev.log`;
    this.registry = `${namespace}:ev.groups`;
  }
  group(group: string, pattern: string): string {
    return `${this.namespace}:ev.g.${group}.${patternFingerprint(pattern)}`;
  }
  dead(group: string, pattern: string): string {
    return `${this.namespace}:ev.dead.${group}.${patternFingerprint(pattern)}`;
  }
  live(group: string, pattern: string): string {
    return `${this.namespace}:ev.live.${group}.${patternFingerprint(pattern)}`;
  }
}

/** A topic binding for a pattern under a prefix: a final `>` is one or more words (`*.#`). */
export function amqpBinding(prefix: string, pattern: string): string {
  return `${prefix}.${pattern.endsWith(">") ? `${pattern.slice(0, -1)}*.#` : pattern}`;
}

export class AmqpEventLog implements EventLog {
  readonly names: AmqpEventNames;
  private readonly dedup: SendOnce;
  private readonly members = new Set<AmqpEventMember>();
  private declaredGeneration = -1;
  private declaring?: Promise<void>;

  constructor(private readonly link: AmqpEventLink) {
    this.names = new AmqpEventNames(link.namespace);
    this.dedup = new SendOnce(link.options.duplicateWindowMs, 100_000);
  }

  private deadline(): number {
    return Date.now() + this.link.publishTimeoutMs;
  }

  async append(record: EventRecord): Promise<void> {
    assertEventType(record.type);
    await this.ensureLog();
    const content = asBuffer(record.body);
    return this.dedup.run(record.id, () =>
      this.link.send(
        {
          exchange: this.names.exchange,
          routingKey: `d.${record.type}`,
          content,
          // timestamp: when it was stored, in ms (what a replay from a time reads).
          properties: { persistent: true, messageId: record.id, type: record.type, timestamp: Date.now() },
        },
        this.deadline(),
      ),
    );
  }

  async notify(record: EventRecord): Promise<void> {
    assertEventType(record.type);
    await this.ensureLog();
    // No confirm (at most once): a plain channel kept for these, opened again after it closes.
    const channel = await this.notifyChannel();
    channel.publish(this.names.exchange, `n.${record.type}`, asBuffer(record.body), {
      persistent: false,
      type: record.type,
    });
  }

  private notifier?: Promise<Channel>;

  private notifyChannel(): Promise<Channel> {
    this.notifier ??= this.link.connection.channel(false, this.deadline()).then(
      (channel) => {
        channel.on("close", () => {
          this.notifier = undefined;
        });
        return channel;
      },
      (error: unknown) => {
        this.notifier = undefined;
        throw error;
      },
    );
    return this.notifier;
  }

  async join(spec: GroupSpec, onEvent: (delivery: EventDelivery) => void): Promise<GroupMember> {
    assertGroupName(spec.group);
    assertEventPattern(spec.pattern);
    await this.ensureLog();
    const member = new AmqpEventMember(this.link, spec, onEvent, {
      ensureGroup: () => this.ensureGroup(spec),
      deadLetter: (type, body, reason) => this.storeDeadLetter(spec, type, body, reason),
    });
    this.members.add(member);
    try {
      await member.start();
    } catch (error) {
      this.members.delete(member);
      await member.close();
      throw error;
    }
    return {
      close: async () => {
        this.members.delete(member);
        await member.close();
      },
    };
  }

  async groups(): Promise<EventGroupInfo[]> {
    await this.ensureLog();
    const records = await this.readRegistry();
    const out: EventGroupInfo[] = [];
    for (const r of records.values()) {
      const queue = await this.check(this.names.group(r.group, r.pattern));
      if (!queue) continue; // deleted by hand
      const dead = await this.check(this.names.dead(r.group, r.pattern));
      out.push({
        group: r.group,
        pattern: r.pattern,
        ordered: r.ordered,
        durable: true,
        pending: queue.messageCount,
        inFlight: undefined,
        deadLetters: dead?.messageCount ?? 0,
        members: queue.consumerCount,
      });
    }
    return out;
  }

  async deadLetters(group: string, pattern: string, limit: number): Promise<DeadEvent[]> {
    const queue = this.names.dead(group, pattern);
    if (!(await this.check(queue))) return [];
    const messages = await this.peek(queue, this.link.options.maxDeadLetters);
    return messages.slice(-limit).map((m) => ({
      group,
      pattern,
      type: String(m.properties.type ?? ""),
      body: m.content,
      reason: String(m.properties.headers?.[H_REASON] ?? ""),
      time: Number(m.properties.headers?.[H_TIME] ?? 0),
    }));
  }

  async deleteGroup(group: string, pattern: string): Promise<boolean> {
    const existed = (await this.check(this.names.group(group, pattern))) !== undefined;
    const deadline = this.deadline();
    await this.link.topology.exec(deadline, async (ch) => {
      await ch.deleteQueue(this.names.group(group, pattern));
      await ch.deleteQueue(this.names.dead(group, pattern));
    });
    await this.unregister(group, pattern);
    return existed;
  }

  /** Deletes every queue and the exchange of the event log (tests, teardown). */
  async deleteAll(): Promise<void> {
    if (!this.link.connection.current) return;
    for (const m of [...this.members]) await m.close().catch(() => {});
    this.members.clear();
    const records = await this.readRegistry().catch(() => new Map<string, RegistryRecord>());
    const deadline = Date.now() + 5000;
    await this.link.topology
      .exec(deadline, async (ch) => {
        for (const r of records.values()) {
          await ch.deleteQueue(this.names.group(r.group, r.pattern));
          await ch.deleteQueue(this.names.dead(r.group, r.pattern));
        }
        await ch.deleteQueue(this.names.stream);
        await ch.deleteQueue(this.names.registry);
        await ch.deleteExchange(this.names.exchange);
      })
      .catch((error: unknown) => this.link.logger.debug({ err: describeThrown(error) }, "event log cleanup"));
    this.declaredGeneration = -1;
  }

  async close(): Promise<void> {
    for (const m of [...this.members]) await m.close().catch(() => {});
    this.members.clear();
    const notifier = this.notifier;
    this.notifier = undefined;
    await notifier?.then((ch) => ch.close()).catch(() => {});
  }

  // ---- internals --------------------------------------------------------------------------------

  /** The exchange, the stream bound to every durable event, and the registry: once per connection. */
  private ensureLog(): Promise<void> {
    const generation = this.link.connection.generation;
    if (this.declaredGeneration === generation && this.link.connection.current) return Promise.resolve();
    this.declaring ??= this.link.topology
      .exec(this.deadline(), async (ch) => {
        const o = this.link.options;
        await ch.assertExchange(this.names.exchange, "topic", { durable: true });
        const args: Record<string, unknown> = {
          "x-queue-type": "stream",
          "x-max-age": `${Math.max(1, Math.ceil(o.maxAgeMs / 1000))}s`,
          "x-max-length-bytes": o.maxBytes,
          "x-stream-max-segment-size-bytes": Math.min(
            500_000_000,
            Math.max(1_000_000, Math.floor(o.maxBytes / 8)),
          ),
        };
        await ch.assertQueue(this.names.stream, { durable: true, arguments: args });
        await ch.bindQueue(this.names.stream, this.names.exchange, "d.#");
        await ch.assertQueue(this.names.registry, { durable: true });
        this.declaredGeneration = this.link.connection.generation;
      })
      .finally(() => {
        this.declaring = undefined;
      });
    return this.declaring;
  }

  /**
   * The group's queue, declared and bound. When this call created it and `from` asks for a
   * replay, the stream is copied into it first: up to a marker, then the queue is bound, then
   * what came between the marker and the binding (those events may arrive twice). Live groups:
   * an auto-delete queue shared by the members.
   */
  private async ensureGroup(spec: GroupSpec): Promise<string> {
    const o = this.link.options;
    if (!spec.durable) {
      const queue = this.names.live(spec.group, spec.pattern);
      await this.link.topology.exec(this.deadline(), async (ch) => {
        await ch.assertQueue(queue, {
          durable: false,
          autoDelete: true,
          arguments: { "x-max-length": 100_000 },
        });
        await ch.bindQueue(queue, this.names.exchange, amqpBinding("*", spec.pattern));
      });
      return queue;
    }
    const queue = this.names.group(spec.group, spec.pattern);
    const isNew = (await this.check(queue)) === undefined;
    const args: Record<string, unknown> = { "x-queue-version": 2, "x-message-ttl": o.maxAgeMs };
    if (o.maxEvents > 0) args["x-max-length"] = o.maxEvents;
    if (spec.ordered) args["x-single-active-consumer"] = true;
    await this.link.topology.exec(this.deadline(), (ch) =>
      ch.assertQueue(queue, { durable: true, arguments: args }),
    );
    if (isNew) await this.register(spec);
    const bind = () =>
      this.link.topology.exec(this.deadline(), (ch) =>
        ch.bindQueue(queue, this.names.exchange, amqpBinding("d", spec.pattern)),
      );
    if (!isNew || spec.from === "new") {
      await bind();
      return queue;
    }
    const replay = new StreamReplay(this.link, this.names, spec.pattern, queue);
    try {
      const marker = await replay.copy(spec.from);
      await bind();
      await replay.copy({ sequence: marker + 1 });
    } finally {
      await replay.close();
    }
    return queue;
  }

  private async storeDeadLetter(
    spec: GroupSpec,
    type: string,
    body: Uint8Array,
    reason: string,
  ): Promise<void> {
    const queue = this.names.dead(spec.group, spec.pattern);
    await this.link.topology.exec(this.deadline(), (ch) =>
      ch.assertQueue(queue, {
        durable: true,
        arguments: { "x-queue-version": 2, "x-max-length": this.link.options.maxDeadLetters },
      }),
    );
    await this.link.send(
      {
        exchange: "",
        routingKey: queue,
        content: asBuffer(body),
        properties: {
          persistent: true,
          type,
          headers: { [H_REASON]: reason.slice(0, 2000), [H_TIME]: String(Date.now()) },
        },
        mandatory: true,
      },
      this.deadline(),
    );
  }

  /** A queue's counts, or undefined when it does not exist (a passive declare). */
  private async check(queue: string): Promise<{ messageCount: number; consumerCount: number } | undefined> {
    try {
      return await this.link.topology.exec(this.deadline(), (ch) => ch.checkQueue(queue));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Reads every message of a classic queue without removing it (got, then requeued by closing the channel). */
  private async peek(queue: string, max: number): Promise<GetMessage[]> {
    const channel: Channel = await this.link.connection.channel(false, this.deadline());
    const out: GetMessage[] = [];
    try {
      for (let i = 0; i < max; i++) {
        const m = await channel.get(queue, { noAck: false });
        if (m === false) break;
        out.push(m);
      }
    } finally {
      await channel.close().catch(() => {});
    }
    return out;
  }

  private async register(spec: GroupSpec): Promise<void> {
    await this.link.send(
      {
        exchange: "",
        routingKey: this.names.registry,
        content: Buffer.from(
          JSON.stringify({ group: spec.group, pattern: spec.pattern, ordered: spec.ordered }),
        ),
        properties: {
          persistent: true,
          headers: { [H_GROUP]: spec.group, [H_PATTERN]: spec.pattern, [H_ORDERED]: spec.ordered },
        },
        mandatory: true,
      },
      this.deadline(),
    );
  }

  private async readRegistry(): Promise<Map<string, RegistryRecord>> {
    const records = new Map<string, RegistryRecord>();
    for (const m of await this.peek(this.names.registry, 100_000)) {
      const r = parseRecord(m.content);
      if (r) records.set(`${r.group}\u0000${r.pattern}`, r);
    }
    return records;
  }

  private async unregister(group: string, pattern: string): Promise<void> {
    const channel: ConfirmChannel = await this.link.connection.channel(true, this.deadline());
    try {
      for (let i = 0; i < 100_000; i++) {
        const m = await channel.get(this.names.registry, { noAck: false });
        if (m === false) break;
        const r = parseRecord(m.content);
        if (!r || (r.group === group && r.pattern === pattern)) channel.ack(m);
      }
    } finally {
      await channel.close().catch(() => {}); // the others are requeued
    }
  }
}

interface RegistryRecord {
  group: string;
  pattern: string;
  ordered: boolean;
}

function parseRecord(content: Buffer): RegistryRecord | undefined {
  try {
    const r = JSON.parse(content.toString("utf8")) as Partial<RegistryRecord>;
    if (typeof r.group !== "string" || typeof r.pattern !== "string") return undefined;
    return { group: r.group, pattern: r.pattern, ordered: r.ordered === true };
  } catch {
    return undefined;
  }
}

export function isNotFound(error: unknown): boolean {
  const e = error as { code?: number; cause?: { code?: number } };
  return e?.code === 404 || e?.cause?.code === 404;
}

export function asBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

export function asEventTransportError(error: unknown, what: string): Error {
  if (error instanceof TransportError) return error;
  return new TransportError(`RabbitMQ event log: ${what}: ${describeThrown(error)}`, {
    cause: error,
    retryable: true,
  });
}

export type { Options };
