/**
 * Message headers: the ones the transport sets itself (never shown to the user), the user's own
 * (checked before sending: NATS cannot carry every name or value), and reading them back.
 */
import type { Msg, MsgHdrs } from "@nats-io/transport-node";
import { PayloadTooLargeError, ValidationError } from "../../src/errors.js";
import { PRIORITY_LEVELS } from "./nats-names.js";
import { HEADER_ROOM_BYTES } from "./nats-options.js";

/** The TaskPriority the message was enqueued with (its level only says the range). */
export const PRIORITY_HEADER = "Fa-Priority";
/** Epoch milliseconds before which a delayed message is not delivered. */
export const NOT_BEFORE_HEADER = "Fa-Not-Before";
/** JetStream de-duplication within the stream's duplicate window. */
export const MSG_ID_HEADER = "Nats-Msg-Id";

const HEADER_NAME = /^[!-9;-~]+$/;
/** User headers may use the header room minus what the transport's own headers need. */
const USER_HEADER_BYTES = HEADER_ROOM_BYTES - 512;

export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.startsWith("nats-") || lower.startsWith("fa-");
}

/**
 * Copies headers onto a message. Untrusted ones (from the caller) must have names NATS can carry,
 * outside the reserved prefixes, and values without line breaks; all must fit the header room.
 */
export function setUserHeaders(h: MsgHdrs, given: Readonly<Record<string, string>>, trusted = false): void {
  let size = 0;
  for (const [name, value] of Object.entries(given)) {
    if (!trusted) {
      if (!HEADER_NAME.test(name) || isReservedHeader(name)) {
        throw new ValidationError(
          `Invalid header name ${JSON.stringify(name)}: use printable ASCII without ":" or spaces, ` +
            'and not the reserved prefixes "Nats-" and "Fa-".',
        );
      }
      if (typeof value !== "string" || /[\r\n]/.test(value)) {
        throw new ValidationError(`The value of header "${name}" must be a string without line breaks.`);
      }
    }
    size += name.length + value.length + 4;
    h.set(name, value);
  }
  if (size > USER_HEADER_BYTES) throw new PayloadTooLargeError(size, USER_HEADER_BYTES, "message headers");
}

/** The priority and the user's headers of a received message. */
export function readHeaders(
  h: MsgHdrs | undefined,
  level: number,
): { priority: number; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  let priority = PRIORITY_LEVELS[level] as number;
  if (!h) return { priority, headers };
  for (const [key, values] of h) {
    const value = values[0] ?? "";
    if (key === PRIORITY_HEADER) {
      const p = Number(value);
      if (Number.isInteger(p) && p >= 0 && p <= 255) priority = p;
    } else if (!isReservedHeader(key) && key !== "__proto__") {
      headers[key] = value;
    }
  }
  return { priority, headers };
}

const NOT_BEFORE_LINE = new TextEncoder().encode(`\r\n${NOT_BEFORE_HEADER}:`);

/**
 * When a delayed message may be delivered (epoch ms), or 0. Every message carries headers (the
 * Nats-Msg-Id at least) and nats.js decodes all of them into a map on the first read of
 * `msg.headers`, a cost paid on every delivery for a header that only delayed messages have; so the
 * raw header block is searched for the header's line first, and decoded only when it is there. A
 * client whose messages do not keep that block where nats.js v3 keeps it gets the decoded path.
 */
export function notBeforeOf(msg: Msg): number {
  const raw = msg as unknown as { _msg?: { hdr?: unknown }; _rdata?: unknown };
  const end = raw._msg?.hdr;
  if (typeof end === "number" && raw._rdata instanceof Uint8Array) {
    if (end <= 0 || indexOfBytes(raw._rdata, NOT_BEFORE_LINE, Math.min(end, raw._rdata.length)) < 0) return 0;
  }
  return Number(msg.headers?.get(NOT_BEFORE_HEADER) || 0);
}

/** Where `needle` starts in `haystack[0, end)`, or -1. */
export function indexOfBytes(haystack: Uint8Array, needle: Uint8Array, end = haystack.length): number {
  const first = needle[0];
  const last = end - needle.length;
  outer: for (let i = 0; i <= last; i++) {
    if (haystack[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** A header value from free text: one line, at most `max` characters. */
export function oneLine(text: string, max: number): string {
  const flat = String(text)
    .replace(/[\r\n]+/g, " ")
    .trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat || "(no reason given)";
}
