/**
 * The options of `EventBus.publish()` and `subscribe()`, read once and checked against the same
 * bounds as the rest of the library (src/limits.ts, src/config.ts): a value of the wrong type, past
 * its bound, or an options object whose reads throw is a ConfigError naming the key, before
 * anything reaches the broker.
 */
import { assertGroupName, type EventStart } from "../../transports/event-log.js";
import { checkRetryBackoff, type RetryBackoff, readOptions } from "../config.js";
import { ConfigError } from "../errors.js";
import { newId } from "../ids.js";
import { type Check, checked, intIn, LIMITS, showValue, wholeMsIn } from "../limits.js";
import { assertEventId, assertEventKey, assertHeaders } from "./event-codec.js";

export const SUBSCRIBE_KEYS = [
  "group",
  "from",
  "concurrency",
  "retries",
  "retryBackoff",
  "ordered",
  "durable",
  "timeoutMs",
  "maxRedeliveries",
];

const PUBLISH_KEYS = ["key", "id", "headers", "durable"];

const DEFAULT_BACKOFF: RetryBackoff = { initialMs: 100, multiplier: 2, maxMs: 10_000, jitter: 0.1 };

export interface ResolvedSubscribe {
  group: string;
  from: EventStart;
  concurrency: number;
  retries: number;
  retryBackoff: RetryBackoff;
  ordered: boolean;
  durable: boolean;
  timeoutMs: number;
  maxRedeliveries: number;
}

export interface ResolvedPublish {
  id: string;
  key: string | undefined;
  headers: Record<string, string> | undefined;
  durable: boolean;
}

const bool: Check = (v) => (typeof v === "boolean" ? undefined : "true or false");

export function resolvePublishOptions(input: unknown): ResolvedPublish {
  const o = readOptions("publish() options", input, PUBLISH_KEYS);
  const id = o["id"] === undefined ? newId("evt") : o["id"];
  assertEventId(id);
  if (o["key"] !== undefined) assertEventKey(o["key"]);
  if (o["headers"] !== undefined) assertHeaders(o["headers"]);
  return {
    id,
    key: o["key"] as string | undefined,
    headers: o["headers"] as Record<string, string> | undefined,
    durable: checked("publish() durable", o["durable"] === undefined ? true : o["durable"], bool) as boolean,
  };
}

export function resolveSubscribeOptions(pattern: string, input: unknown): ResolvedSubscribe {
  const o = readOptions("SubscribeOptions", input, SUBSCRIBE_KEYS);
  const option = <T>(key: string, fallback: T, check: Check): T =>
    checked(`subscribe(): ${key}`, o[key] === undefined ? fallback : o[key], check) as T;
  const durable = option("durable", true, bool);
  if (durable && o["group"] === undefined) {
    throw new ConfigError(
      `subscribe("${pattern}"): a durable subscription needs a group (e.g. { group: "billing" }): ` +
        "the group is what keeps its place while its members are down. Use { durable: false } for live events only.",
    );
  }
  const group = o["group"] === undefined ? newId("live").replaceAll(".", "-") : o["group"];
  assertGroupName(group);
  const from = startOf(o["from"] === undefined ? "new" : o["from"], durable);
  return {
    group,
    from,
    durable,
    concurrency: option("concurrency", 8, intIn(1, LIMITS.concurrency)),
    retries: option("retries", 3, intIn(0, LIMITS.retries)),
    timeoutMs: option("timeoutMs", 60_000, wholeMsIn(0)),
    maxRedeliveries: option("maxRedeliveries", 3, intIn(0, LIMITS.redeliveries)),
    ordered: option("ordered", false, bool),
    retryBackoff: {
      ...DEFAULT_BACKOFF,
      ...checkRetryBackoff(o["retryBackoff"], "subscribe(): retryBackoff"),
    },
  };
}

/** The latest time `from: { time }` takes: the largest a Date holds (epoch ms). */
const MAX_TIME = 8.64e15;

/** `from`, checked, as a plain value (never the caller's object). */
function startOf(from: unknown, durable: boolean): EventStart {
  let start: EventStart | undefined = from === "new" || from === "all" ? from : undefined;
  if (start === undefined && typeof from === "object" && from !== null) {
    let fields: Record<string, unknown>;
    try {
      fields = readOptions("subscribe(): from", from, ["time", "sequence"]);
    } catch {
      fields = { unreadable: true };
    }
    const keys = Object.keys(fields);
    const time = fields["time"];
    const sequence = fields["sequence"];
    if (
      keys.length === 1 &&
      typeof time === "number" &&
      Number.isFinite(time) &&
      time >= 0 &&
      time <= MAX_TIME
    )
      start = { time };
    else if (keys.length === 1 && Number.isSafeInteger(sequence) && (sequence as number) >= 1)
      start = { sequence: sequence as number };
  }
  if (start === undefined) {
    throw new ConfigError(
      `subscribe(): from must be "new", "all", { time: epochMs } or { sequence: n ≥ 1 }, got ${showValue(from)}.`,
    );
  }
  if (!durable && from !== "new") {
    throw new ConfigError(
      'subscribe(): a non-durable subscription receives live events only: use from: "new".',
    );
  }
  return start;
}
