/**
 * The wire messages of entities, JSON like every other message (see ../codec.ts): an event (or a
 * timer firing) to one entity, through its mailbox partition; and the answer to an ask(), on the
 * asker's reply subject (at most once: an ask that gets no answer times out, the event stays
 * applied or queued).
 */
import { decodeMessage, encode } from "../codec.js";
import { MalformedMessageError } from "../errors.js";
import type { EntityEvent, EntitySnapshot } from "./entity-logic.js";
import { isEvent } from "./entity-record.js";

export interface ReplyAddress {
  /** The asker's reply subject. */
  s: string;
  /** Its inbox (Subscription.inbox) where the transport has them. */
  i?: string;
  /** The ask's id. */
  a: string;
}

export interface EntityMessage {
  v: 1;
  /** "ev": an event; "tm": a durable timer firing. */
  k: "ev" | "tm";
  /** The entity id. */
  to: string;
  /** The event id: the entity takes each id once. */
  id: string;
  e: EntityEvent;
  r?: ReplyAddress;
  /** Timers: the timer id, its token, and when it is due (epoch ms). */
  tn?: string;
  tt?: string;
  at?: number;
}

export type EntityReply =
  | { v: 1; a: string; ok: true; snap: EntitySnapshot; dup?: boolean }
  | {
      v: 1;
      a: string;
      ok: false;
      code: string;
      message: string;
      eventType?: string;
      state?: unknown;
      reason?: string;
    };

export function encodeEntityMessage(message: EntityMessage, limitBytes: number): Uint8Array {
  return encode(message, limitBytes, "entity event");
}

export function decodeEntityMessage(bytes: Uint8Array): EntityMessage {
  const what = "entity message";
  const r = decodeMessage(bytes, what);
  const bad = (field: string) =>
    new MalformedMessageError(`The ${what} has a missing or invalid "${field}" field.`);
  if (r["k"] !== "ev" && r["k"] !== "tm") throw bad("k");
  if (typeof r["to"] !== "string" || r["to"].length === 0) throw bad("to");
  if (typeof r["id"] !== "string" || r["id"].length === 0) throw bad("id");
  if (!isEvent(r["e"])) throw bad("e");
  const reply = r["r"] as Partial<ReplyAddress> | undefined;
  if (
    reply !== undefined &&
    (typeof reply !== "object" ||
      reply === null ||
      typeof reply.s !== "string" ||
      typeof reply.a !== "string" ||
      (reply.i !== undefined && typeof reply.i !== "string"))
  ) {
    throw bad("r");
  }
  if (
    r["k"] === "tm" &&
    (typeof r["tn"] !== "string" || typeof r["tt"] !== "string" || typeof r["at"] !== "number")
  ) {
    throw bad("tn");
  }
  return r as unknown as EntityMessage;
}

export function decodeEntityReply(bytes: Uint8Array): EntityReply {
  const what = "entity reply";
  const r = decodeMessage(bytes, what);
  if (typeof r["a"] !== "string") throw new MalformedMessageError(`The ${what} has no ask id.`);
  if (r["ok"] === true) {
    const snap = r["snap"] as Partial<EntitySnapshot> | undefined;
    if (
      typeof snap !== "object" ||
      snap === null ||
      typeof snap.id !== "string" ||
      typeof snap.version !== "number"
    ) {
      throw new MalformedMessageError(`The ${what} has no valid snapshot.`);
    }
  } else if (r["ok"] !== false || typeof r["code"] !== "string" || typeof r["message"] !== "string") {
    throw new MalformedMessageError(`The ${what} is neither a snapshot nor an error.`);
  }
  return r as unknown as EntityReply;
}
