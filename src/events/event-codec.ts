/**
 * The wire form of a bus event: one JSON envelope per event, encoded and checked like task data
 * (plain JSON only, size-limited, parsed without prototype pollution).
 */
import { decodeEnvelope, encode } from "../codec.js";
import { describeThrown, MalformedMessageError, ValidationError } from "../errors.js";
import { showValue } from "../limits.js";

/** What a handler receives. */
export interface BusEvent<T = unknown> {
  id: string;
  type: string;
  data: T;
  key?: string;
  /** When it was published (epoch ms, the publisher's clock). */
  time: number;
  /** W3C trace context (`traceparent`) and the publisher's own headers. */
  headers: Record<string, string>;
  /** Its position in the log, where the broker tells it (memory, NATS, a RabbitMQ replay). */
  sequence?: number;
}

interface EventEnvelope {
  v: 1;
  id: string;
  type: string;
  data: unknown;
  key?: string;
  time: number;
  headers?: Record<string, string>;
}

const MAX_ID = 128;
const MAX_KEY = 256;
/** Visible ASCII and beyond: no spaces, no control characters. */
const PRINTABLE = /^[!-~\u00a0-\uffff]+$/;

export function assertEventId(id: unknown): asserts id is string {
  if (typeof id !== "string" || id.length === 0 || id.length > MAX_ID || !PRINTABLE.test(id)) {
    throw new ValidationError(
      `Invalid event id ${showValue(id)}: use 1-${MAX_ID} characters without spaces or control characters.`,
    );
  }
}

export function assertEventKey(key: unknown): asserts key is string {
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY) {
    throw new ValidationError(
      `Invalid event key ${showValue(key)}: use a string of 1-${MAX_KEY} characters.`,
    );
  }
}

export function assertHeaders(headers: unknown): asserts headers is Record<string, string> {
  if (typeof headers !== "object" || headers === null) {
    throw new ValidationError("Event headers must be an object of strings.");
  }
  let entries: Array<[string, unknown]>;
  try {
    if (Array.isArray(headers)) throw new ValidationError("Event headers must be an object of strings.");
    entries = Object.entries(headers);
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError(
      `Event headers could not be read (${describeThrown(error)}); pass a plain object.`,
      {
        cause: error,
      },
    );
  }
  for (const [k, v] of entries) {
    if (typeof v !== "string") {
      throw new ValidationError(`Event header ${showValue(k)} must be a string, got ${typeof v}.`);
    }
  }
}

export function encodeEvent(event: BusEvent, limitBytes: number): Uint8Array {
  const wire: EventEnvelope = { v: 1, id: event.id, type: event.type, data: event.data, time: event.time };
  if (event.key !== undefined) wire.key = event.key;
  if (Object.keys(event.headers).length > 0) wire.headers = event.headers;
  return encode(wire, limitBytes, "event data");
}

/** Decodes and checks an event from the wire; MalformedMessageError when it is not one. */
export function decodeEvent(bytes: Uint8Array, sequence: number | undefined): BusEvent {
  const what = "event";
  const r = decodeEnvelope(bytes, what);
  const bad = (field: string) =>
    new MalformedMessageError(`The ${what} has a missing or invalid "${field}" field.`);
  if (typeof r["id"] !== "string" || r["id"] === "") throw bad("id");
  if (typeof r["type"] !== "string" || r["type"] === "") throw bad("type");
  if (typeof r["time"] !== "number" || !Number.isFinite(r["time"])) throw bad("time");
  if (r["key"] !== undefined && typeof r["key"] !== "string") throw bad("key");
  const headers = r["headers"] ?? {};
  if (typeof headers !== "object" || headers === null || Array.isArray(headers)) throw bad("headers");
  for (const v of Object.values(headers)) if (typeof v !== "string") throw bad("headers");
  const event: BusEvent = {
    id: r["id"],
    type: r["type"],
    data: r["data"],
    time: r["time"],
    headers: headers as Record<string, string>,
  };
  if (r["key"] !== undefined) event.key = r["key"] as string;
  if (sequence !== undefined) event.sequence = sequence;
  return event;
}
