/**
 * What is stored for one entity, as one JSON value written by compare-and-set:
 *   mv  the machine version that wrote it        n   events applied (the entity's version)
 *   s   the persisted snapshot                   ids the last event ids taken (newest last): a redelivered
 *                                                    event is recognised and not applied again; stored
 *                                                    as `ip` (their longest common prefix) and what
 *                                                    follows it in each, since the ids of one sender
 *                                                    share their first ~12 characters
 *   sq  the mailbox position (NATS stream sequence) of the last message taken, where the broker has
 *       them: a redelivery at or below it is not applied again, however long ago it was taken
 *       (absent on RabbitMQ and memory, and in records written before it existed)
 *   tm  durable timers waiting: id → event, due time, token (a timer message fires only with its token)
 *   ob  the outbox: messages this state still has to send (entity sends, bus events, timer messages);
 *       sent after the write, at least once, and dropped by the next write once sent
 */
import { decodeMessage, encodeJson, utf8 } from "../codec.js";
import { MalformedMessageError, PayloadTooLargeError } from "../errors.js";
import type { EntityEvent } from "./entity-logic.js";

export interface TimerEntry {
  e: EntityEvent;
  /** Due (epoch ms). */
  at: number;
  /** Unique per entity: the version that scheduled it, and its index in that step. */
  t: string;
}

export type OutboxEntry =
  | { k: "send"; b: string; p: number; to: string; id: string; e: EntityEvent }
  | { k: "emit"; id: string; e: EntityEvent }
  /** Schedule the timer tm[n] (if it still has token t). */
  | { k: "timer"; n: string; t: string };

export interface EntityRecord {
  v: 1;
  mv: number;
  n: number;
  s: unknown;
  ids: string[];
  /** The mailbox sequence of the last message taken (absent: none known). */
  sq?: number;
  tm: Record<string, TimerEntry>;
  ob: OutboxEntry[];
  at: number;
}

export function encodeRecord(record: EntityRecord, limitBytes: number): Uint8Array {
  const wire: Partial<EntityRecord> = { v: 1, mv: record.mv, n: record.n, s: record.s, at: record.at };
  if (record.sq !== undefined) wire.sq = record.sq;
  for (const _ in record.tm) {
    wire.tm = record.tm;
    break;
  }
  if (record.ob.length > 0) wire.ob = record.ob;
  // The event ids are strings (each from a decoded message or record): not walked again, only
  // written. The snapshot, timers and outbox are checked for what JSON would mangle.
  const head = encodeJson(wire, "entity state");
  const bytes = utf8(`${head.slice(0, -1)},${encodeIds(record.ids)}}`);
  if (bytes.byteLength > limitBytes)
    throw new PayloadTooLargeError(bytes.byteLength, limitBytes, "entity state");
  return bytes;
}

const isInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * `"ip":<common prefix>,"ids":[<the rest of each>]` (no "ip" when they share nothing). The prefix
 * is kept to `[A-Za-z0-9_-]` (a default event id's characters), so it is cut out of the array's
 * JSON text as it stands: after a `"` that opens an element (a closing one is followed by `,` or `]`,
 * and a text with no escape has no other `"`).
 */
function encodeIds(ids: readonly string[]): string {
  const json = JSON.stringify(ids);
  const first = ids[0];
  // An escape in the text (`\"`) could be followed by the prefix: then the ids are kept whole.
  if (first === undefined || json.includes("\\")) return `"ids":${json}`;
  let common = 0;
  while (common < first.length && isSafe(first.charCodeAt(common))) common++;
  for (let i = 1; i < ids.length && common > 0; i++) {
    const id = ids[i] as string;
    let j = 0;
    const max = Math.min(common, id.length);
    while (j < max && id.charCodeAt(j) === first.charCodeAt(j)) j++;
    common = j;
  }
  if (common < 2) return `"ids":${json}`;
  const prefix = first.slice(0, common);
  return `"ip":"${prefix}","ids":${json.replaceAll(`"${prefix}`, '"')}`;
}

/** A-Z a-z 0-9 _ - */
function isSafe(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45;
}

function decodeIds(r: Record<string, unknown>): string[] | undefined {
  const ids = r["ids"];
  const prefix = r["ip"] ?? "";
  if (!Array.isArray(ids) || typeof prefix !== "string") return undefined;
  const out: string[] = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const rest = ids[i];
    if (typeof rest !== "string") return undefined;
    out[i] = prefix + rest;
  }
  return out;
}

export function decodeRecord(bytes: Uint8Array): EntityRecord {
  const r = decodeMessage(bytes, "stored entity state");
  const bad = (field: string) =>
    new MalformedMessageError(`The stored entity state has a missing or invalid "${field}" field.`);
  if (!isInt(r["mv"])) throw bad("mv");
  if (!isInt(r["n"])) throw bad("n");
  if (!("s" in r)) throw bad("s");
  const ids = decodeIds(r);
  if (ids === undefined) throw bad("ids");
  const tm = r["tm"] ?? {};
  if (typeof tm !== "object" || tm === null || Array.isArray(tm)) throw bad("tm");
  for (const entry of Object.values(tm as Record<string, unknown>)) {
    const t = entry as Partial<TimerEntry> | null;
    if (typeof t !== "object" || t === null || !isInt(t.at) || typeof t.t !== "string" || !isEvent(t.e))
      throw bad("tm");
  }
  const ob = r["ob"] ?? [];
  if (!Array.isArray(ob) || !ob.every(isOutboxEntry)) throw bad("ob");
  const sq = r["sq"];
  if (sq !== undefined && !isInt(sq)) throw bad("sq");
  return {
    v: 1,
    mv: r["mv"],
    n: r["n"],
    s: r["s"],
    ids,
    ...(sq === undefined ? {} : { sq }),
    tm: tm as Record<string, TimerEntry>,
    ob: ob as OutboxEntry[],
    at: isInt(r["at"]) ? r["at"] : 0,
  };
}

export function isEvent(value: unknown): value is EntityEvent {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as { type?: unknown }).type === "string" &&
    (value as { type: string }).type.length > 0
  );
}

function isOutboxEntry(value: unknown): value is OutboxEntry {
  const o = value as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null) return false;
  switch (o["k"]) {
    case "send":
      return (
        typeof o["b"] === "string" &&
        isInt(o["p"]) &&
        typeof o["to"] === "string" &&
        typeof o["id"] === "string" &&
        isEvent(o["e"])
      );
    case "emit":
      return typeof o["id"] === "string" && isEvent(o["e"]);
    case "timer":
      return typeof o["n"] === "string" && typeof o["t"] === "string";
    default:
      return false;
  }
}
