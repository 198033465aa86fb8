/**
 * The EventBus: durable publish/subscribe between services over a transport's event log. Every
 * group gets every matching event; the members of one group compete; at least once per group.
 * See README "Cluster-wide events" for the guarantees and their limits on each broker.
 */
import { context as otelContext, propagation } from "@opentelemetry/api";
import {
  assertEventPattern,
  assertEventType,
  assertGroupName,
  type DeadEvent,
  type EventGroupInfo,
  type EventLog,
  type EventStart,
} from "../../transports/event-log.js";
import { InMemoryTransport } from "../../transports/memory/memory.transport.js";
import type { Transport } from "../../transports/transport.js";
import { type Clock, systemClock } from "../clock.js";
import { type RetryBackoff, readOptions, validateKeys } from "../config.js";
import { exploreActor } from "../decorators/actor-explorer.js";
import { ConfigError, StateError } from "../errors.js";
import { checked, intIn } from "../limits.js";
import { childLogger, getDefaultLogger, type Logger } from "../logger.js";
import { subscribeHandler } from "./actor-events.js";
import { type BusEvent, encodeEvent } from "./event-codec.js";
import { type EventHandler, EventRunner, type SubscriptionStats } from "./event-subscription.js";
import { resolvePublishOptions, resolveSubscribeOptions } from "./subscribe-options.js";

export interface EventBusOptions {
  /** Default: a new InMemoryTransport (closed with the bus). */
  transport?: Transport;
  clock?: Clock;
  logger?: Logger;
}

export interface PublishEventOptions {
  /** Events of one key reach ordered groups one at a time, in publish order. */
  key?: string;
  /** De-duplication: a re-send with the same id within the window is stored once. Default: a new id. */
  id?: string;
  headers?: Record<string, string>;
  /** False: sent without being stored or confirmed (at most once), to non-durable subscriptions only. */
  durable?: boolean;
}

export interface SubscribeOptions {
  /** The group: every group gets every matching event; its members compete. Required when durable. */
  group?: string;
  /** Where a new group starts. Default "new". */
  from?: EventStart;
  /** Events this member handles at once. Default 8. */
  concurrency?: number;
  /** Retries of a failing handler before the event goes to the group's dead letters. Default 3. */
  retries?: number;
  retryBackoff?: Partial<RetryBackoff>;
  /** One key's events one at a time, in publish order, across the group's members. Default false. */
  ordered?: boolean;
  /** False: at most once, live events only, no replay. Default true. */
  durable?: boolean;
  /** A handler running longer is aborted (ctx.signal) and counts as a failed attempt. Default 60 s; 0: none. */
  timeoutMs?: number;
  /** Redeliveries without a settlement (a member died during the event) before it is dead-lettered. Default 3. */
  maxRedeliveries?: number;
}

export interface EventSubscription {
  readonly group: string;
  readonly pattern: string;
  readonly stats: Readonly<SubscriptionStats>;
  /** Stops this member: running handlers finish (up to `timeoutMs`, default 10 s), the rest go back to the group. */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

export interface PublishedEvent {
  id: string;
  time: number;
}

export class EventBus {
  readonly transport: Transport;
  private readonly ownsTransport: boolean;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly subscriptions = new Set<EventSubscription>();
  private connecting?: Promise<EventLog>;
  /** The log once connected (publish then takes no extra promise hop). */
  private connected?: EventLog;
  private closed = false;

  constructor(options: EventBusOptions = {}) {
    validateKeys("EventBusOptions", options, ["transport", "clock", "logger"]);
    this.clock = options.clock ?? systemClock;
    this.ownsTransport = options.transport === undefined;
    this.transport = options.transport ?? new InMemoryTransport({ clock: this.clock });
    this.logger = childLogger(options.logger ?? getDefaultLogger(), { component: "events" });
    if (typeof this.transport.eventLog !== "function") {
      throw new ConfigError(
        `The ${this.transport.kind} transport has no event log (Transport.eventLog()), so it cannot carry ` +
          "the EventBus. Use the memory, NATS or RabbitMQ transport.",
      );
    }
  }

  /** Stores an event; resolves once the broker has it (unless `durable: false`). */
  async publish(type: string, data?: unknown, options: PublishEventOptions = {}): Promise<PublishedEvent> {
    assertEventType(type);
    const { id, key, headers: given, durable } = resolvePublishOptions(options);
    const headers: Record<string, string> = given === undefined ? {} : { ...given };
    if (headers["traceparent"] === undefined) propagation.inject(otelContext.active(), headers);
    const event: BusEvent = { id, type, data: data ?? null, time: this.clock.now(), headers };
    if (key !== undefined) event.key = key;
    const log = this.connected ?? (await this.log());
    const body = encodeEvent(event, this.transport.maxPayloadBytes);
    const record = key === undefined ? { type, id, body } : { type, id, key, body };
    if (!durable) await log.notify(record);
    else await log.append(record);
    return { id, time: event.time };
  }

  /** Joins `options.group` for events matching `pattern` (`*` one part, a final `>` the rest). */
  async subscribe<T = unknown>(
    pattern: string,
    handler: EventHandler<T>,
    options: SubscribeOptions = {},
  ): Promise<EventSubscription> {
    assertEventPattern(pattern);
    const o = resolveSubscribeOptions(pattern, options);
    if (typeof handler !== "function")
      throw new ConfigError("subscribe(pattern, handler): handler must be a function.");
    const { group, from, durable, ordered, concurrency } = o;
    const log = await this.log();
    const runner = new EventRunner(
      handler as EventHandler,
      {
        group,
        retries: o.retries,
        retryBackoff: o.retryBackoff,
        timeoutMs: o.timeoutMs,
        ordered,
        maxRedeliveries: o.maxRedeliveries,
        ackDeadlineMs: this.transport.ackDeadlineMs,
        ...(typeof from === "object" && "time" in from ? { notBefore: from.time } : {}),
      },
      this.clock,
      this.logger,
    );
    runner.member = await log.join({ group, pattern, from, ordered, durable, concurrency }, runner.onEvent);
    const subscription: EventSubscription = {
      group,
      pattern,
      stats: runner.stats,
      close: async ({ timeoutMs: wait = 10_000 } = {}) => {
        if (!this.subscriptions.delete(subscription)) return;
        await runner.close(wait);
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  /** Subscribes the `@On` methods of an `@Actor` instance (its group defaults to the actor's name). */
  async register(instance: object): Promise<EventSubscription[]> {
    const actor = exploreActor(instance, "EventBus.register()");
    const subscriptions: EventSubscription[] = [];
    for (const h of actor.events) subscriptions.push(await subscribeHandler(this, h));
    return subscriptions;
  }

  /** The durable groups on the transport (every process's), with their lag where the broker tells it. */
  async groups(): Promise<EventGroupInfo[]> {
    return (await this.log()).groups();
  }

  /** The latest dead letters of a group, decoded where they can be. */
  async deadLetters(group: string, pattern: string, options: { limit?: number } = {}): Promise<DeadEvent[]> {
    assertGroupName(group);
    assertEventPattern(pattern);
    const { limit = 100 } = readOptions("deadLetters() options", options, ["limit"]);
    const max = checked("deadLetters(): limit", limit, intIn(1, 10_000)) as number;
    return (await this.log()).deadLetters(group, pattern, max);
  }

  /** Deletes a durable group: its place in the log and its dead letters. */
  async deleteGroup(group: string, pattern: string): Promise<boolean> {
    assertGroupName(group);
    assertEventPattern(pattern);
    return (await this.log()).deleteGroup(group, pattern);
  }

  /** Closes every subscription of this bus (and the transport, if the bus created it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.connected = undefined;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    if (this.ownsTransport) await this.transport.close();
  }

  private log(): Promise<EventLog> {
    if (this.closed) return Promise.reject(new StateError("This EventBus is closed; create a new one."));
    this.connecting ??= this.transport.connect().then(() => {
      const log = (this.transport.eventLog as () => EventLog)();
      if (!this.closed) this.connected = log;
      return log;
    });
    return this.connecting;
  }
}
