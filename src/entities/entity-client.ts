/**
 * The client side of entities on one transport: sends events into mailboxes, waits for the answers
 * of asks (one reply subscription per client, made on the first ask), reads stored snapshots.
 * A Coordinator has one; `coordinator.entity(Order, id)` hands out references bound to it.
 */
import { partitionOf } from "../../transports/entity-mailbox.js";
import { assertStateAddress, type StateStore } from "../../transports/state-store.js";
import type { Subscription, Transport } from "../../transports/transport.js";
import { type Clock, systemClock, type TimerHandle } from "../clock.js";
import { readOptions } from "../config.js";
import {
  describeThrown,
  EntityAskTimeoutError,
  EntityError,
  EntityEventError,
  EntityRejectedError,
  EntitySnapshotError,
  StateError,
  ValidationError,
} from "../errors.js";
import { newId } from "../ids.js";
import { checked, showValue, wholeMsIn } from "../limits.js";
import type { Logger } from "../logger.js";
import type { AnyEntityDefinition } from "./define-entity.js";
import { type EntityBackends, entityBackends, entitySubjects } from "./entity-backends.js";
import type { EntityEvent, EntitySnapshot } from "./entity-logic.js";
import {
  decodeEntityReply,
  type EntityMessage,
  type EntityReply,
  encodeEntityMessage,
  type ReplyAddress,
} from "./entity-messages.js";
import { decodeRecord } from "./entity-record.js";

export interface SendOptions {
  /** The event's id (default: a new one). The entity applies each id once: re-send with the same id to retry safely. */
  id?: string;
}

export interface AskOptions extends SendOptions {
  /** How long to wait for the answer (default: the definition's askTimeoutMs). */
  timeoutMs?: number;
}

interface PendingAsk {
  resolve(snapshot: EntitySnapshot): void;
  reject(error: Error): void;
  timer: TimerHandle;
  entity: string;
  entityId: string;
}

const MAX_EVENT_ID = 128;

export class EntityClient {
  readonly id = newId("ec");
  private backends?: EntityBackends;
  private replies?: Promise<Subscription>;
  private readonly asks = new Map<string, PendingAsk>();
  private closed = false;

  constructor(
    private readonly transport: Transport,
    private readonly options: { store?: StateStore; clock?: Clock; logger: Logger },
  ) {}

  /** The mailbox and store (resolved on first use, once the transport is connected). */
  async ready(): Promise<EntityBackends> {
    if (this.closed) throw new StateError("This entity client was closed (its coordinator stopped).");
    if (this.backends) return this.backends;
    await this.transport.connect();
    this.backends ??= entityBackends(this.transport, this.options.store);
    return this.backends;
  }

  /** Enqueues an event durably; resolves with its id. */
  async send(
    def: AnyEntityDefinition,
    id: string,
    event: EntityEvent,
    options: SendOptions = {},
  ): Promise<string> {
    const message = this.message(def, id, event, readOptions("send() options", options, ["id"]));
    await this.deliver(def, message);
    return message.id;
  }

  /** Enqueues an event and resolves with the entity's snapshot once it was applied. */
  async ask(
    def: AnyEntityDefinition,
    id: string,
    event: EntityEvent,
    options: AskOptions = {},
  ): Promise<EntitySnapshot> {
    const o = readOptions("ask() options", options, ["id", "timeoutMs"]);
    const given = o["timeoutMs"];
    const timeoutMs = checked(
      "ask(): timeoutMs",
      given === undefined ? def.options.askTimeoutMs : given,
      wholeMsIn(1),
    ) as number;
    const message = this.message(def, id, event, o);
    const reply = await this.replyAddress();
    message.r = reply;
    const clock = this.options.clock ?? systemClock;
    const answer = new Promise<EntitySnapshot>((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        this.asks.delete(reply.a);
        reject(new EntityAskTimeoutError(def.name, id, message.id, timeoutMs));
      }, timeoutMs);
      this.asks.set(reply.a, { resolve, reject, timer, entity: def.name, entityId: id });
    });
    // The answer can time out while the send is still being retried (a cluster electing a leader):
    // that rejection is returned below, not left unhandled meanwhile.
    answer.catch(() => {});
    try {
      await this.deliver(def, message);
    } catch (error) {
      const pending = this.asks.get(reply.a);
      this.asks.delete(reply.a);
      clock.clearTimeout(pending?.timer);
      throw error;
    }
    return answer;
  }

  /** The stored snapshot of an entity, or null if it never received an event. */
  async get(def: AnyEntityDefinition, id: string): Promise<EntitySnapshot | null> {
    assertStateAddress(def.name, id);
    const { store } = await this.ready();
    return readEntity(store, def.name, id);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const [key, pending] of this.asks) {
      (this.options.clock ?? systemClock).clearTimeout(pending.timer);
      pending.reject(
        new StateError(
          `The ask to ${pending.entity} ${JSON.stringify(pending.entityId)} was abandoned: its client closed.`,
        ),
      );
      this.asks.delete(key);
    }
    const sub = await this.replies?.catch(() => undefined);
    await sub?.unsubscribe().catch(() => {});
    if (this.backends?.ownsStore) await this.backends.store.close().catch(() => {});
  }

  private message(
    def: AnyEntityDefinition,
    id: string,
    event: EntityEvent,
    options: Record<string, unknown>,
  ): EntityMessage {
    assertStateAddress(def.name, id);
    let type: unknown;
    try {
      type = typeof event === "object" && event !== null && !Array.isArray(event) ? event.type : undefined;
    } catch (error) {
      throw new ValidationError(
        `An entity event could not be read (${describeThrown(error)}); send a plain object with a "type".`,
        { cause: error },
      );
    }
    if (typeof type !== "string" || type === "") {
      throw new ValidationError(
        `An entity event must be an object with a non-empty string "type", got ${showValue(event)}.`,
      );
    }
    // What JSON would mangle is refused, naming the key, when the message is encoded (deliver()).
    const eventId = options["id"] === undefined ? newId("ev") : options["id"];
    if (typeof eventId !== "string" || eventId.length === 0 || eventId.length > MAX_EVENT_ID) {
      throw new ValidationError(
        `An event id must be a string of 1 to ${MAX_EVENT_ID} characters, got ${showValue(eventId)}.`,
      );
    }
    return { v: 1, k: "ev", to: id, id: eventId, e: event };
  }

  private async deliver(def: AnyEntityDefinition, message: EntityMessage): Promise<void> {
    const { mailbox } = await this.ready();
    const body = encodeEntityMessage(message, this.transport.maxPayloadBytes);
    // No broker-side de-duplication by event id: a re-sent ask must reach the entity, which answers
    // it (a duplicate) from its own memory of applied ids.
    await mailbox.send(def.name, def.partitions, partitionOf(message.to, def.partitions), body);
  }

  private async replyAddress(): Promise<ReplyAddress> {
    await this.ready();
    const subject = entitySubjects.reply(this.id);
    this.replies ??= this.transport.subscribe(subject, (m) => this.onReply(m.body));
    let sub: Subscription;
    try {
      sub = await this.replies;
    } catch (error) {
      this.replies = undefined;
      throw error;
    }
    const address: ReplyAddress = { s: subject, a: newId("ask") };
    if (sub.inbox !== undefined) address.i = sub.inbox;
    return address;
  }

  private onReply(body: Uint8Array): void {
    let reply: EntityReply;
    try {
      reply = decodeEntityReply(body);
    } catch (error) {
      this.options.logger.warn({ reason: describeThrown(error) }, "ignored a malformed entity reply");
      return;
    }
    const pending = this.asks.get(reply.a);
    if (!pending) return; // timed out already, or another client's
    this.asks.delete(reply.a);
    (this.options.clock ?? systemClock).clearTimeout(pending.timer);
    if (reply.ok) pending.resolve(reply.snap);
    else pending.reject(errorOfReply(reply, pending.entity, pending.entityId));
  }
}

/** The stored snapshot of an entity (for get(), and for tools such as a dashboard). */
export async function readEntity(
  store: StateStore,
  entity: string,
  id: string,
): Promise<EntitySnapshot | null> {
  const stored = await store.get(entity, id);
  if (stored === null) return null;
  let record: ReturnType<typeof decodeRecord>;
  try {
    record = decodeRecord(stored.data);
  } catch (error) {
    throw new EntitySnapshotError(
      `The stored state of ${entity} ${JSON.stringify(id)} cannot be read: ${describeThrown(error)}.`,
      entity,
      id,
      { cause: error },
    );
  }
  const s = (record.s ?? {}) as { value?: unknown; context?: unknown; status?: unknown };
  return {
    id,
    value: s.value,
    context: s.context,
    status: typeof s.status === "string" ? s.status : "active",
    version: record.n,
  };
}

function errorOfReply(reply: Extract<EntityReply, { ok: false }>, entity: string, id: string): EntityError {
  switch (reply.code) {
    case "FA_ENTITY_REJECTED":
      return new EntityRejectedError(entity, id, reply.eventType ?? "?", reply.state);
    case "FA_ENTITY_EVENT_FAILED":
      return new EntityEventError(entity, id, reply.eventType ?? "?", reply.reason ?? reply.message);
    case "FA_ENTITY_SNAPSHOT":
      return new EntitySnapshotError(reply.message, entity, id);
    default:
      return new EntityError(reply.message, entity, id);
  }
}
