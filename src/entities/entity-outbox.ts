/**
 * What a holder sends once an entity's new state is stored: the entries of its outbox (events to
 * entities, bus events, durable timers), and the answers to asks. Outbox entries are stored with
 * the state before they leave, so a holder that dies in between leaves them to the next one, which
 * sends them again (receivers recognise them by id). An entry that fails to leave is tried again
 * with a growing delay.
 */
import { createHash } from "node:crypto";
import { partitionOf } from "../../transports/entity-mailbox.js";
import type { Transport } from "../../transports/transport.js";
import type { Clock } from "../clock.js";
import { encode } from "../codec.js";
import { describeThrown, ValidationError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { AnyEntityDefinition } from "./define-entity.js";
import type { EntityBackends } from "./entity-backends.js";
import type { EntityEvent } from "./entity-logic.js";
import {
  type EntityMessage,
  type EntityReply,
  encodeEntityMessage,
  type ReplyAddress,
} from "./entity-messages.js";
import type { OutboxEntry } from "./entity-record.js";
import type { Loaded, Outcome } from "./entity-step.js";

/**
 * Where `emit()` events of entity machines go: the event bus (`coordinator.events`), or anything
 * with its publish(type, data, { key, id }).
 */
export interface EntityEventSink {
  publish(type: string, data: unknown, options: { key?: string; id?: string }): Promise<unknown>;
}

const RETRY_MS = [100, 500, 2000, 5000, 15_000, 30_000];

export class EntityOutbox {
  private readonly sent = new WeakSet<OutboxEntry>();
  private readonly sending = new WeakSet<OutboxEntry>();
  private warnedNoSink = false;
  private stopped = false;
  /** Emitted events dropped because no event sink was configured. */
  droppedEmits = 0;

  constructor(
    private readonly transport: Transport,
    private readonly backends: EntityBackends,
    private readonly options: { clock: Clock; logger: Logger; sink?: EntityEventSink },
  ) {}

  stop(): void {
    this.stopped = true;
  }

  /** Drops the entries known to be sent from a loaded entity's list (before it is written again). */
  forgetSent(loaded: Loaded): void {
    if (loaded.unsent.length > 0) loaded.unsent = loaded.unsent.filter((e) => !this.sent.has(e));
  }

  /** Sends the entity's unsent entries (those not already under way). */
  flush(def: AnyEntityDefinition, id: string, loaded: Loaded, attempt = 0): void {
    for (const entry of loaded.unsent) {
      if (this.sent.has(entry) || this.sending.has(entry)) continue;
      this.sending.add(entry);
      this.deliver(def, id, loaded, entry).then(
        () => {
          this.sending.delete(entry);
          this.sent.add(entry);
        },
        (error: unknown) => {
          this.sending.delete(entry);
          if (this.stopped) return;
          if (error instanceof ValidationError) {
            // Trying again cannot help (an invalid event type, a message too large): drop it, loudly.
            this.sent.add(entry);
            this.options.logger.error(
              { entity: def.name, id, kind: entry.k, err: describeThrown(error) },
              "an entity's outgoing message is invalid and was dropped",
            );
            return;
          }
          const ms = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)] as number;
          this.options.logger.warn(
            { entity: def.name, id, kind: entry.k, err: describeThrown(error), retryInMs: ms },
            "an entity's outgoing message could not leave; trying again",
          );
          this.options.clock.setTimeout(() => {
            if (!this.stopped) this.flush(def, id, loaded, attempt + 1);
          }, ms);
        },
      );
    }
  }

  /**
   * Sends the new timers of a state before that state is written: a holder that dies right after
   * the write leaves no timer unsent (after the write, only an event to the entity would make the
   * next holder load it and send what its outbox holds). Rejects when one cannot leave (the batch
   * is then tried again); an invalid one is dropped, loudly, as flush() does.
   */
  async sendTimers(def: AnyEntityDefinition, id: string, loaded: Loaded): Promise<void> {
    for (const entry of loaded.unsent) {
      if (entry.k !== "timer" || this.sent.has(entry)) continue;
      try {
        await this.deliver(def, id, loaded, entry);
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        this.options.logger.error(
          { entity: def.name, id, kind: entry.k, err: describeThrown(error) },
          "an entity's outgoing message is invalid and was dropped",
        );
      }
      this.sent.add(entry);
    }
  }

  /** Sends the answer to an ask (at most once: a lost answer makes the ask time out). */
  answer(to: ReplyAddress, outcome: Exclude<Outcome, { kind: "skip" } | { kind: "early" }>): void {
    const reply: EntityReply =
      outcome.kind === "ok"
        ? outcome.dup
          ? { v: 1, a: to.a, ok: true, snap: outcome.snapshot, dup: true }
          : { v: 1, a: to.a, ok: true, snap: outcome.snapshot }
        : { v: 1, a: to.a, ok: false, ...withoutKind(outcome) };
    let body: Uint8Array;
    try {
      body = encode(reply, this.transport.maxPayloadBytes, "entity reply");
    } catch (error) {
      body = encode(
        {
          v: 1,
          a: to.a,
          ok: false,
          code: "FA_ENTITY",
          message: `the answer could not be sent: ${describeThrown(error)}`,
        },
        this.transport.maxPayloadBytes,
        "entity reply",
      );
    }
    const options = to.i === undefined ? undefined : { inbox: to.i };
    this.transport.publish(to.s, body, options).catch((error: unknown) => {
      this.options.logger.warn({ err: describeThrown(error) }, "could not answer an entity ask");
    });
  }

  /** A timer that came before its time goes back for the rest of its delay. */
  async reschedule(def: AnyEntityDefinition, message: EntityMessage, delayMs: number): Promise<void> {
    const body = encodeEntityMessage(message, this.transport.maxPayloadBytes);
    await this.backends.mailbox.sendLater(
      def.name,
      def.partitions,
      partitionOf(message.to, def.partitions),
      body,
      delayMs,
    );
  }

  private async deliver(
    def: AnyEntityDefinition,
    id: string,
    loaded: Loaded,
    entry: OutboxEntry,
  ): Promise<void> {
    const { mailbox } = this.backends;
    const limit = this.transport.maxPayloadBytes;
    switch (entry.k) {
      case "send": {
        const message: EntityMessage = { v: 1, k: "ev", to: entry.to, id: entry.id, e: entry.e };
        await mailbox.send(
          entry.b,
          entry.p,
          partitionOf(entry.to, entry.p),
          encodeEntityMessage(message, limit),
          {
            id: entry.id,
          },
        );
        return;
      }
      case "timer": {
        const timer = loaded.record.tm[entry.n];
        if (timer === undefined || timer.t !== entry.t) return; // cancelled or fired since
        const message: EntityMessage = {
          v: 1,
          k: "tm",
          to: id,
          id: `tm.${entry.t}`,
          e: timer.e,
          tn: entry.n,
          tt: entry.t,
          at: timer.at,
        };
        const delay = Math.max(0, timer.at - this.options.clock.now());
        await mailbox.sendLater(
          def.name,
          def.partitions,
          partitionOf(id, def.partitions),
          encodeEntityMessage(message, limit),
          delay,
        );
        return;
      }
      case "emit":
        await this.emit(def, id, entry.e, entry.id);
        return;
    }
  }

  private async emit(
    def: AnyEntityDefinition,
    id: string,
    event: EntityEvent,
    eventId: string,
  ): Promise<void> {
    const sink = this.options.sink;
    if (!sink) {
      this.droppedEmits++;
      if (!this.warnedNoSink) {
        this.warnedNoSink = true;
        this.options.logger.warn(
          { entity: def.name },
          "an entity emitted an event but no event sink is configured (the event bus); emitted events are dropped",
        );
      }
      return;
    }
    const { type, ...data } = event;
    await sink.publish(type, data, { key: eventKey(def.name, id), id: eventId });
  }
}

/** The bus key of an entity's events (events of one key keep their order): its type and id. */
function eventKey(entity: string, id: string): string {
  const key = `${entity}:${id}`;
  return key.length <= 256 ? key : `${entity}:#${createHash("sha256").update(id).digest("base64url")}`;
}

function withoutKind(
  outcome: Extract<Outcome, { kind: "error" }>,
): Omit<Extract<Outcome, { kind: "error" }>, "kind"> {
  const { kind: _kind, ...rest } = outcome;
  return rest;
}
