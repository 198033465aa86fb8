/**
 * Options of the AMQP transport: what a user may pass, the defaults, validation that names the
 * bad key, and the mapping of an `amqp://` / `amqps://` URL onto amqplib's connect options.
 */

import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import type { Options, SocketOptions } from "amqplib";
import { validateKeys } from "../../src/config.js";
import { ConfigError } from "../../src/errors.js";
import { intIn, intParam, MAX_DURATION_MS, showValue } from "../../src/limits.js";
import type { Logger } from "../../src/logger.js";
import { redactUrl } from "../../src/url-redaction.js";
import { type EventLogOptions, type ResolvedEventLogOptions, resolveEventLogOptions } from "../event-log.js";
import { decodeUrlPart } from "../shared-options.js";
import { type AmqpQueueType, DEFAULT_DELAY_BUCKETS_MS, validateNamespace } from "./amqp-names.js";
import { DEFAULT_MAX_TASKS_PER_MESSAGE } from "./amqp-packs.js";
import { queueTypeOf } from "./amqp-quorum.js";

export interface AmqpReconnectOptions {
  /** First wait after a lost connection or a failed attempt. */
  initialDelayMs: number;
  /** The wait doubles after each failed attempt, up to this. */
  maxDelayMs: number;
}

export interface AmqpTransportOptions {
  /** `amqp://user:pass@host:5672/vhost` or `amqps://…`. Default `amqp://guest:guest@127.0.0.1:5672`. */
  url?: string | URL;
  /** Prefix of every queue and exchange name, so applications can share a broker. Default "fastagentic". */
  namespace?: string;
  /** TLS options for `amqps://` (ca, cert, key, passphrase, servername, rejectUnauthorized, …). */
  tls?: TlsConnectionOptions;
  /** AMQP heartbeat: a silent broker or network is noticed after about twice this. Default 10. */
  heartbeatSeconds?: number;
  /** Shown in the RabbitMQ management UI and `rabbitmqctl list_connections`. */
  connectionName?: string;
  /** Largest message body accepted (refused before sending). Default 1 MiB, at most 128 MiB. */
  maxPayloadBytes?: number;
  /** How long `connect()` keeps trying to reach the broker the first time. Default 10 s. */
  connectTimeoutMs?: number;
  /**
   * How long an enqueue or publish may wait, during an outage or while the broker applies flow
   * control, for the broker to confirm it; then it fails with PublishError. Default 30 s.
   */
  publishTimeoutMs?: number;
  reconnect?: Partial<AmqpReconnectOptions>;
  /**
   * RabbitMQ's `consumer_timeout` (global on 3.10, 30 min by default): a delivery left unacked
   * longer makes the broker close its channel. Set it to the broker's value; a task whose timeout
   * exceeds it is logged as a warning when it is delivered. 0: the broker has no timeout.
   */
  consumerTimeoutMs?: number;
  /** How long an enqueue's dedupId is remembered (in this process only). Default 2 min. */
  dedupWindowMs?: number;
  /** At most this many dedupIds are remembered; the oldest are forgotten first. Default 100 000. */
  dedupMaxEntries?: number;
  /** Delays are rounded up to one of these (one wait queue each, per namespace). */
  delayBucketsMs?: readonly number[];
  /** Delete every queue and exchange this transport declared when it closes (tests, demos). */
  deleteOnClose?: boolean;
  /**
   * The storage version of the work and dead-letter queues (classic queues, `x-queue-version`).
   * 2, the default, costs RabbitMQ about a fifth less CPU per persistent message than 1 (measured
   * on 3.10); it needs RabbitMQ ≥ 3.10. A queue that already exists with the other version is used
   * as it is (with a warning): RabbitMQ refuses to declare a queue with other arguments.
   */
  queueVersion?: 1 | 2;
  /**
   * "classic" (default): one classic queue per work queue, with per-message priority; on one node.
   * "quorum": replicated quorum queues (one per priority level, see the README); needs RabbitMQ
   * ≥ 3.10. Also `?queueType=quorum` in the URL. Every process of a namespace must use the same.
   */
  queueType?: AmqpQueueType;
  /**
   * Quorum queues: how often the broker hands out a message whose consumer died holding it before
   * it dead-letters it (`x-delivery-limit`). Keep it above the workers' maxRedeliveries (3), which
   * dead-letter a poison task first, with its reason. Default 20. Also `?deliveryLimit=` in the URL.
   */
  deliveryLimit?: number;
  /**
   * At most this many tasks per broker message: the enqueues of one turn of the event loop to the
   * same queue at the same priority (without a dedupId, delay or headers) leave together, which
   * costs RabbitMQ and both clients much less per task. A worker still holds no more tasks than its
   * free slots (see the README, RabbitMQ). 1 sends one message per task. Default 8, at most 64.
   */
  maxTasksPerMessage?: number;
  /** Retention of the event log (EventBus): max age, bytes, events; applied when its queues are created. */
  events?: EventLogOptions;
  /** A pino-compatible logger. Default: the library's logger. */
  logger?: Logger;
}

export interface ResolvedAmqpOptions {
  connect: Options.Connect;
  socket: SocketOptions;
  /** The URL with its password hidden, for messages. */
  where: string;
  namespace: string;
  maxPayloadBytes: number;
  connectTimeoutMs: number;
  publishTimeoutMs: number;
  reconnect: AmqpReconnectOptions;
  consumerTimeoutMs: number;
  dedupWindowMs: number;
  dedupMaxEntries: number;
  delayBucketsMs: readonly number[];
  deleteOnClose: boolean;
  queueVersion: 1 | 2;
  queueType: AmqpQueueType;
  deliveryLimit: number;
  maxTasksPerMessage: number;
  events: ResolvedEventLogOptions;
  logger?: Logger;
}

export const AMQP_OPTION_KEYS = [
  "url",
  "namespace",
  "tls",
  "heartbeatSeconds",
  "connectionName",
  "maxPayloadBytes",
  "connectTimeoutMs",
  "publishTimeoutMs",
  "reconnect",
  "consumerTimeoutMs",
  "dedupWindowMs",
  "dedupMaxEntries",
  "delayBucketsMs",
  "deleteOnClose",
  "queueVersion",
  "queueType",
  "deliveryLimit",
  "maxTasksPerMessage",
  "events",
  "logger",
] as const;

const DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672";
/** RabbitMQ's own default max_message_size (3.10): 128 MiB. */
export const RABBITMQ_MAX_MESSAGE_BYTES = 128 * 1024 * 1024;
/** Query parameters an AMQP URL may carry. */
const URL_PARAMS = ["namespace", "heartbeat", "frameMax", "connection_name", "queueType", "deliveryLimit"];

export function resolveAmqpOptions(options: AmqpTransportOptions = {}): ResolvedAmqpOptions {
  validateKeys("AmqpTransportOptions", options, AMQP_OPTION_KEYS);
  const url = parseUrl(options.url ?? DEFAULT_URL);
  for (const key of url.searchParams.keys()) {
    if (!URL_PARAMS.includes(key)) {
      throw new ConfigError(
        `Unknown query parameter "${key}" in the AMQP URL ${redactUrl(url)}. Known: ${URL_PARAMS.join(", ")}.`,
      );
    }
  }
  const fromUrl = url.searchParams.get("namespace") ?? undefined;
  if (fromUrl !== undefined && options.namespace !== undefined && fromUrl !== options.namespace) {
    throw new ConfigError(
      `The AMQP URL says namespace "${fromUrl}" but the options say "${options.namespace}"; give it once.`,
    );
  }
  const namespace = options.namespace ?? fromUrl ?? "fastagentic";
  validateNamespace(namespace);

  const heartbeatParam = url.searchParams.get("heartbeat");
  const heartbeat =
    heartbeatParam !== null
      ? intParam("The AMQP URL parameter heartbeat (seconds)", heartbeatParam, intIn(0, 65_535))
      : (options.heartbeatSeconds ?? 10);
  check(
    Number.isInteger(heartbeat) && heartbeat >= 0 && heartbeat <= 65_535,
    "heartbeatSeconds",
    "an integer from 0 to 65535",
    heartbeat,
  );
  const frameMaxParam = url.searchParams.get("frameMax");
  // 0: the broker's limit; else at least the 4096 bytes AMQP 0-9-1 requires.
  const frameMax =
    frameMaxParam === null
      ? null
      : intParam("The AMQP URL parameter frameMax (bytes)", frameMaxParam, (v) =>
          v === 0 || intIn(4096, 4_294_967_295)(v) === undefined
            ? undefined
            : "0 or an integer from 4096 to 4294967295",
        );
  const secure = url.protocol === "amqps:";
  const connect: Options.Connect = {
    protocol: secure ? "amqps" : "amqp",
    hostname: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : secure ? 5671 : 5672,
    username: url.username ? decodeUrlPart(url.username, "user") : "guest",
    password: url.password ? decodeUrlPart(url.password, "password") : url.username ? "" : "guest",
    vhost: url.pathname.length > 1 ? decodeUrlPart(url.pathname.slice(1), "vhost") : "/",
    heartbeat,
    ...(frameMax !== null ? { frameMax } : {}),
  };
  if (options.tls !== undefined && !secure) {
    throw new ConfigError(`TLS options were given for ${redactUrl(url)}; use an amqps:// URL for TLS.`);
  }
  const connectionName =
    url.searchParams.get("connection_name") ?? options.connectionName ?? `fastagentic-${process.pid}`;
  const socket: SocketOptions = {
    ...(secure ? options.tls : {}),
    noDelay: true,
    keepAlive: true,
    clientProperties: { connection_name: connectionName },
  };

  const maxPayloadBytes = options.maxPayloadBytes ?? 1024 * 1024;
  check(
    Number.isInteger(maxPayloadBytes) &&
      maxPayloadBytes > 1024 &&
      maxPayloadBytes <= RABBITMQ_MAX_MESSAGE_BYTES,
    "maxPayloadBytes",
    `an integer from 1025 to ${RABBITMQ_MAX_MESSAGE_BYTES} (RabbitMQ's max_message_size)`,
    maxPayloadBytes,
  );
  const reconnect = { initialDelayMs: 100, maxDelayMs: 5000, ...options.reconnect };
  validateKeys("AmqpTransportOptions.reconnect", reconnect, ["initialDelayMs", "maxDelayMs"]);
  const buckets = [...(options.delayBucketsMs ?? DEFAULT_DELAY_BUCKETS_MS)].sort((a, b) => a - b);
  check(
    buckets.length > 0 &&
      buckets.length <= 32 &&
      buckets.every((b) => Number.isInteger(b) && b > 0 && b <= MAX_DURATION_MS),
    "delayBucketsMs",
    `1 to 32 integers from 1 to ${MAX_DURATION_MS} (milliseconds)`,
    options.delayBucketsMs,
  );
  const resolved: ResolvedAmqpOptions = {
    connect,
    socket,
    where: redactUrl(url),
    namespace,
    maxPayloadBytes,
    connectTimeoutMs: duration(options.connectTimeoutMs ?? 10_000, "connectTimeoutMs"),
    publishTimeoutMs: duration(options.publishTimeoutMs ?? 30_000, "publishTimeoutMs"),
    reconnect: {
      initialDelayMs: duration(reconnect.initialDelayMs, "reconnect.initialDelayMs"),
      maxDelayMs: duration(reconnect.maxDelayMs, "reconnect.maxDelayMs"),
    },
    consumerTimeoutMs: nonNegative(options.consumerTimeoutMs ?? 1_800_000, "consumerTimeoutMs"),
    dedupWindowMs: nonNegative(options.dedupWindowMs ?? 120_000, "dedupWindowMs"),
    dedupMaxEntries: entries(options.dedupMaxEntries ?? 100_000, "dedupMaxEntries"),
    delayBucketsMs: [...new Set(buckets)],
    deleteOnClose: options.deleteOnClose ?? false,
    queueVersion: options.queueVersion ?? 2,
    ...queueTypeOf(url.searchParams, options.queueType, options.deliveryLimit),
    maxTasksPerMessage: options.maxTasksPerMessage ?? DEFAULT_MAX_TASKS_PER_MESSAGE,
    events: resolveEventLogOptions(options.events, -1),
  };
  check(
    Number.isInteger(resolved.maxTasksPerMessage) &&
      resolved.maxTasksPerMessage >= 1 &&
      resolved.maxTasksPerMessage <= 64,
    "maxTasksPerMessage",
    "an integer from 1 to 64",
    options.maxTasksPerMessage,
  );
  check(
    resolved.queueVersion === 1 || resolved.queueVersion === 2,
    "queueVersion",
    "1 or 2",
    options.queueVersion,
  );
  if (options.logger !== undefined) resolved.logger = options.logger;
  return resolved;
}

function parseUrl(raw: string | URL): URL {
  let url: URL;
  try {
    url = new URL(String(raw));
  } catch {
    // No `cause`: the URL parser's error carries the raw input, credentials included.
    throw new ConfigError(`"${redactUrl(String(raw))}" is not a URL; use amqp://user:pass@host:5672/vhost.`);
  }
  if (url.protocol !== "amqp:" && url.protocol !== "amqps:") {
    throw new ConfigError(`The AMQP transport takes amqp:// or amqps:// URLs, not ${redactUrl(url)}.`);
  }
  if (!url.hostname) throw new ConfigError(`The AMQP URL ${redactUrl(url)} has no host.`);
  return url;
}

function check(ok: boolean, key: string, what: string, value: unknown): void {
  if (!ok) throw new ConfigError(`AmqpTransportOptions.${key} must be ${what}; got ${showValue(value)}.`);
}

function duration(value: unknown, key: string): number {
  const ok = typeof value === "number" && Number.isFinite(value) && value > 0 && value <= MAX_DURATION_MS;
  check(ok, key, `a duration in milliseconds from 1 to ${MAX_DURATION_MS}`, value);
  return value as number;
}

function nonNegative(value: unknown, key: string): number {
  const ok = typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= MAX_DURATION_MS;
  check(ok, key, `a duration in milliseconds from 0 to ${MAX_DURATION_MS}`, value);
  return value as number;
}

function entries(value: unknown, key: string): number {
  check(
    Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 10_000_000,
    key,
    "an integer from 1 to 10000000",
    value,
  );
  return value as number;
}

/**
 * The options of an `amqp://` / `amqps://` URL with `options` from transportFromUrl(): every
 * AmqpTransportOptions key but `url`, and `clock` (accepted and ignored: broker timers run on real time).
 */
export function amqpOptionsFromUrl(url: URL, options: Record<string, unknown> = {}): AmqpTransportOptions {
  const { clock: _clock, ...rest } = options;
  const keys = AMQP_OPTION_KEYS.filter((k) => k !== "url");
  validateKeys("transportFromUrl() options for amqp://", rest, keys);
  return { ...(rest as Omit<AmqpTransportOptions, "url">), url };
}
