/**
 * What the transport writes into and reads from AMQP message properties: the priority level,
 * the user's headers, and its own bookkeeping headers (delivery count, delay, not-before).
 * Pure functions: no I/O.
 */
import type { ConsumeMessage, Options } from "amqplib";
import { ValidationError } from "../../src/errors.js";
import { priorityLevel } from "../transport.js";
import { H_DELAY, H_DELIVERIES, H_NOT_BEFORE, H_PACK, H_PRIORITY, PRIORITY_LEVELS } from "./amqp-names.js";

/** What the transport knows about a received message. */
export interface MessageMeta {
  /** Deliveries recorded before this one was (re)published. */
  deliveries: number;
  priority: number;
  /** Epoch ms before which the message must not be handed over (delays beyond the largest bucket). */
  notBefore: number;
  /** The user's headers (and the dead-letter reason). */
  headers: Record<string, string>;
  /** Tasks the message carries: more than 1 for a pack (see amqp-packs.ts). */
  tasks: number;
}

/**
 * Headers RabbitMQ adds when it dead-letters a message (wait queues do, on every delay), and the
 * count of returns a quorum queue keeps.
 */
const BROKER_HEADERS = /^x-(death|first-death-|last-death-|delivery-count$)/;
/** Bookkeeping a copy sets afresh (or must not carry: a copy is one task); the exact priority travels on. */
const NOT_COPIED = new Set([H_DELIVERIES, H_NOT_BEFORE, H_DELAY, H_PACK]);
const INTERNAL = new Set([...NOT_COPIED, H_PRIORITY]);
const UNSAFE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** Properties of a new message: persistent, its priority level, the user's headers. */
export function newMessageProperties(
  priority: number,
  headers: Record<string, string> | undefined,
): Options.Publish {
  if (typeof priority !== "number" || !Number.isFinite(priority)) {
    throw new ValidationError(
      `The priority must be a number (a TaskPriority value); got ${String(priority)}.`,
    );
  }
  const level = priorityLevel(priority, PRIORITY_LEVELS);
  const properties: Options.Publish = { persistent: true, priority: level };
  // No headers object when there are none: amqplib makes the one it is given a prototype, which
  // costs more than the rest of the publish together.
  let table: Record<string, unknown> | undefined;
  if (headers !== undefined) {
    for (const key in headers) {
      const value = headers[key];
      if (typeof value !== "string") {
        throw new ValidationError(`The header "${key}" must be a string; got ${typeof value}.`);
      }
      table ??= {};
      table[key] = value;
    }
  }
  if (priority !== PRIORITY_LEVELS[level]) {
    table ??= {};
    table[H_PRIORITY] = String(priority);
  }
  if (table !== undefined) properties.headers = table;
  return properties;
}

/** What a message without headers of its own carries, per priority level (shared, never changed). */
const PLAIN_META: readonly MessageMeta[] = PRIORITY_LEVELS.map((value) =>
  Object.freeze({ deliveries: 0, priority: value, notBefore: 0, headers: Object.freeze({}), tasks: 1 }),
);

export function readMeta(message: ConsumeMessage): MessageMeta {
  const table = (message.properties.headers ?? {}) as Record<string, unknown>;
  const level = Number(message.properties.priority ?? 0);
  let empty = true;
  for (const _ in table) {
    empty = false;
    break;
  }
  if (empty) return PLAIN_META[level] ?? (PLAIN_META[0] as MessageMeta);
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(table)) {
    if (typeof value !== "string" || INTERNAL.has(key) || UNSAFE_KEYS.has(key) || BROKER_HEADERS.test(key))
      continue;
    headers[key] = value;
  }
  const explicit = Number(table[H_PRIORITY]);
  return {
    deliveries: nonNegativeInt(table[H_DELIVERIES]),
    priority: Number.isFinite(explicit) ? explicit : (PRIORITY_LEVELS[level] ?? PRIORITY_LEVELS[0]),
    notBefore: nonNegativeInt(table[H_NOT_BEFORE]),
    headers,
    tasks: Math.max(1, nonNegativeInt(table[H_PACK])),
  };
}

/**
 * The properties of a copy of a received message, sent again by the transport (a retry, a
 * dead letter, a re-stamped redelivery): the same priority and headers, minus what the broker
 * added, with the delivery count recorded so far.
 */
export function copyProperties(message: ConsumeMessage, deliveries: number): Options.Publish {
  const source = (message.properties.headers ?? {}) as Record<string, unknown>;
  const headers: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source)) {
    if (BROKER_HEADERS.test(key) || NOT_COPIED.has(key)) continue;
    headers[key] = value;
  }
  if (deliveries > 0) headers[H_DELIVERIES] = String(deliveries);
  const properties: Options.Publish = { persistent: true, headers };
  if (message.properties.priority !== undefined) properties.priority = message.properties.priority;
  return properties;
}

function nonNegativeInt(value: unknown): number {
  const n = typeof value === "string" || typeof value === "number" ? Number(value) : 0;
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

const TIMEOUT_KEY = Buffer.from('"timeoutMs":');

/**
 * The `timeoutMs` of a task envelope, if the body is one and it exceeds `limitMs` (the broker's
 * consumer timeout). Scans the bytes first, so the common case costs one search, not a parse.
 */
export function taskTimeoutOver(body: Buffer, limitMs: number): number | undefined {
  if (limitMs <= 0) return undefined;
  let found = false;
  for (let at = body.indexOf(TIMEOUT_KEY); at >= 0; at = body.indexOf(TIMEOUT_KEY, at + 1)) {
    if (numberAt(body, at + TIMEOUT_KEY.length) > limitMs) found = true;
  }
  if (!found) return undefined;
  try {
    const envelope = JSON.parse(body.toString("utf8")) as { timeoutMs?: unknown };
    const timeout = envelope.timeoutMs;
    return typeof timeout === "number" && timeout > limitMs ? timeout : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The JSON number at `start` read from the bytes, without making a string: digits only (a
 * timeout is an integer of milliseconds); anything else (a fraction, an exponent) reads as
 * Infinity, so the caller parses the body to be sure.
 */
function numberAt(body: Buffer, start: number): number {
  let at = start;
  while (at < body.length && body[at] === 0x20) at++;
  let value = 0;
  let digits = 0;
  for (; at < body.length; at++) {
    const c = body[at] as number;
    if (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
      digits++;
    } else break;
  }
  if (digits === 0) return 0;
  const next = at < body.length ? body[at] : 0x7d;
  return next === 0x2c || next === 0x7d || next === 0x20 ? value : Number.POSITIVE_INFINITY;
}
