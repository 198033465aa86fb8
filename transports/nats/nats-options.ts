/**
 * Options of the NATS transport: what a production deployment sets (servers, credentials, TLS,
 * namespace, JetStream limits), their defaults, and validation that says what to fix.
 */
import { ConfigError } from "../../src/errors.js";
import { intParam, MAX_DURATION_MS, showValue } from "../../src/limits.js";
import { type EventLogOptions, type ResolvedEventLogOptions, resolveEventLogOptions } from "../event-log.js";
import { assertNamespace, decodeUrlPart } from "../shared-options.js";

export interface NatsTlsOptions {
  /** PEM files… */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** …or PEM text. */
  ca?: string;
  cert?: string;
  key?: string;
  /** TLS before the NATS INFO exchange (servers configured with `handshake_first`). */
  handshakeFirst?: boolean;
}

export interface NatsTransportOptions {
  /** "host:port" or "nats://host:port" (or "tls://…"); several for a cluster. Default 127.0.0.1:4222. */
  servers?: string | string[];
  /** Connection name shown by the server's monitoring. Default "fastagentic". */
  name?: string;
  token?: string;
  user?: string;
  password?: string;
  /** An nkey seed ("SU…"): authenticates with the nkey, signing the server's nonce. */
  nkeySeed?: string;
  /** A .creds file (JWT + nkey seed), as issued by `nsc` for operator-mode servers. */
  credsFile?: string;
  /** `true` requires TLS with the system's CAs; an object gives CA, client certificate and key. */
  tls?: boolean | NatsTlsOptions;
  /** Prefix of every subject and stream, so applications share a server. Default "fastagentic". */
  namespace?: string;
  /** "keep" (default): streams and their messages outlive the process. "delete": close() deletes the streams this transport used. */
  streamsOnClose?: "keep" | "delete";
  /** Largest message body; at most the server's max_payload minus room for headers (the default). */
  maxPayloadBytes?: number;
  /** JetStream AckWait: an unsettled delivery is redelivered after this long. Default 30,000. */
  ackWaitMs?: number;
  /** JetStream duplicate window: a re-sent dedupId within it is dropped. Default 120,000. */
  duplicateWindowMs?: number;
  /**
   * How long the record of finished tasks (KV bucket `fa_done_<namespace>`) remembers a task's
   * outcome, so a redelivery of a finished task does not run its handler again. Default 0: no
   * record (every redelivery runs; counted). Opt-in (e.g. 3,600,000, an hour; also the URL's
   * `?finishedTtlMs=`) because it costs one publish per task: in a bench run here NATS throughput
   * went from 1.74x to 1.55x raw JetStream and p50 from 1.18x to 1.38x.
   */
  finishedTtlMs?: number;
  /** Safety cap: a message delivered more often than this is dead-lettered by the transport. Default 1000. */
  maxDeliveries?: number;
  /** Unsettled deliveries of one queue level across all processes. Default 10,000. */
  maxAckPending?: number;
  /** Waiting pulls per queue level across all processes (JetStream's max_waiting; server default 512). Fixed when a consumer is created. */
  maxWaiting?: number;
  /** Stream replicas in a JetStream cluster (1, 3 or 5). Default 1. */
  replicas?: number;
  /** Stream storage. Default "file" (survives a server restart). */
  storage?: "file" | "memory";
  /** How long one JetStream publish waits for its ack before it is re-sent. Default 5000. */
  publishTimeoutMs?: number;
  /** Sends of one publish (same message id) before enqueue() fails with PublishError. Default 4. */
  publishAttempts?: number;
  /** Timeout of the first connection. Default 5000. */
  connectTimeoutMs?: number;
  /** First reconnect delay; doubles up to maxReconnectWaitMs, with jitter. Defaults 250 and 5000. */
  reconnectWaitMs?: number;
  maxReconnectWaitMs?: number;
  /** How long an idle consumer's pull request waits on an empty level before it is renewed. Default 5000. */
  idlePullMs?: number;
  /** Retention of the event log (EventBus): max age, bytes, events; applied when its stream is created. */
  events?: EventLogOptions;
}

export interface ResolvedNatsOptions {
  servers: string[];
  name: string;
  token?: string;
  user?: string;
  password?: string;
  nkeySeed?: string;
  credsFile?: string;
  tls?: NatsTlsOptions;
  namespace: string;
  streamsOnClose: "keep" | "delete";
  maxPayloadBytes?: number;
  ackWaitMs: number;
  duplicateWindowMs: number;
  finishedTtlMs: number;
  maxDeliveries: number;
  maxAckPending: number;
  maxWaiting?: number;
  replicas: number;
  storage: "file" | "memory";
  publishTimeoutMs: number;
  publishAttempts: number;
  connectTimeoutMs: number;
  reconnectWaitMs: number;
  maxReconnectWaitMs: number;
  idlePullMs: number;
  events: ResolvedEventLogOptions;
}

export const DEFAULT_NAMESPACE = "fastagentic";
/** Bytes kept for headers (message id, priority, trace context, user headers) under max_payload. */
export const HEADER_ROOM_BYTES = 8 * 1024;

type Check = (value: unknown) => string | undefined;

const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Check =>
  (v) =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= max
      ? undefined
      : `an integer from ${min} to ${max}`;
const ms = (min: number): Check => int(min, MAX_DURATION_MS);
const text: Check = (v) => (typeof v === "string" && v.length > 0 ? undefined : "a non-empty string");
const oneOf =
  (...values: string[]): Check =>
  (v) =>
    values.includes(v as string) ? undefined : values.map((x) => `"${x}"`).join(" or ");
const servers: Check = (v) => {
  const list = typeof v === "string" ? [v] : v;
  return Array.isArray(list) && list.length > 0 && list.every((s) => typeof s === "string" && s.length > 0)
    ? undefined
    : 'a server address or a non-empty array of them (e.g. "nats://10.0.0.1:4222")';
};
/** Checked first, by the rule every transport applies (assertNamespace). */
const namespace: Check = () => undefined;
const tls: Check = (v) => {
  if (typeof v === "boolean") return undefined;
  if (typeof v !== "object" || v === null || Array.isArray(v))
    return "true, false or { caFile, certFile, keyFile }";
  const known = ["caFile", "certFile", "keyFile", "ca", "cert", "key", "handshakeFirst"];
  for (const [key, value] of Object.entries(v)) {
    if (!known.includes(key)) return `an object with only ${known.join(", ")} (found "${key}")`;
    if (key === "handshakeFirst" ? typeof value !== "boolean" : typeof value !== "string") {
      return `an object whose "${key}" is a ${key === "handshakeFirst" ? "boolean" : "string"}`;
    }
  }
  return undefined;
};

const SCHEMA: Record<keyof NatsTransportOptions, Check> = {
  servers,
  name: text,
  token: text,
  user: text,
  password: text,
  nkeySeed: (v) => (typeof v === "string" && /^S[A-Z2-7]{57}$/.test(v) ? undefined : 'an nkey seed ("S…")'),
  credsFile: text,
  tls,
  namespace,
  streamsOnClose: oneOf("keep", "delete"),
  maxPayloadBytes: int(1024, 64 * 1024 * 1024),
  ackWaitMs: ms(100),
  duplicateWindowMs: ms(100),
  finishedTtlMs: (v) => {
    const problem = v === 0 ? undefined : ms(1000)(v);
    return problem === undefined ? undefined : `0 (no record) or ${problem}`;
  },
  maxDeliveries: int(1, 1_000_000),
  maxAckPending: int(1, 1_000_000),
  maxWaiting: int(1, 1_000_000),
  replicas: int(1, 5),
  storage: oneOf("file", "memory"),
  publishTimeoutMs: ms(10),
  publishAttempts: int(1, 100),
  connectTimeoutMs: ms(10),
  reconnectWaitMs: ms(10),
  maxReconnectWaitMs: ms(10),
  idlePullMs: ms(100),
  events: (v) => {
    if (typeof v !== "object" || v === null || Array.isArray(v))
      return "an object ({ maxAgeMs, maxBytes, … })";
    try {
      resolveEventLogOptions(v as EventLogOptions, -1);
      return undefined;
    } catch (error) {
      return `valid (${(error as Error).message})`;
    }
  },
};

/** Keys a caller of transportFromUrl may pass that mean nothing to this transport. */
const IGNORED = new Set(["clock"]);

export function resolveNatsOptions(input: NatsTransportOptions = {}): ResolvedNatsOptions {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new ConfigError(`NatsTransport options must be an object, got ${showValue(input)}.`);
  }
  if (input.namespace !== undefined) assertNamespace(input.namespace, "NATS transport");
  const known = Object.keys(SCHEMA);
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined || IGNORED.has(key)) continue;
    const check = SCHEMA[key as keyof NatsTransportOptions];
    if (check === undefined) {
      const plain = key.toLowerCase().replace(/_/g, "");
      const guess = known.find((k) => k.toLowerCase() === plain || k.toLowerCase() === `${plain}ms`);
      throw new ConfigError(
        `Unknown option "${key}" for the NATS transport.` +
          (guess ? ` Did you mean "${guess}"?` : "") +
          ` Known options: ${known.join(", ")}.`,
      );
    }
    const problem = check(value);
    if (problem !== undefined) {
      const shown = /password|token|nkeySeed/.test(key) ? "(hidden)" : showValue(value);
      throw new ConfigError(`NATS transport option "${key}" must be ${problem}; got ${shown}.`);
    }
  }
  if (input.token !== undefined && (input.user !== undefined || input.password !== undefined)) {
    throw new ConfigError(
      'NATS transport: give either "token" or "user"/"password", not both (a URL "nats://secret@host" is a token).',
    );
  }
  if (input.password !== undefined && input.user === undefined) {
    throw new ConfigError('NATS transport: "password" was given without "user".');
  }
  if (input.nkeySeed !== undefined && input.credsFile !== undefined) {
    throw new ConfigError(
      'NATS transport: give either "nkeySeed" or "credsFile" (a creds file already holds its nkey seed).',
    );
  }
  const resolved: ResolvedNatsOptions = {
    servers: input.servers === undefined ? ["127.0.0.1:4222"] : [input.servers].flat(),
    name: input.name ?? "fastagentic",
    namespace: input.namespace ?? DEFAULT_NAMESPACE,
    streamsOnClose: input.streamsOnClose ?? "keep",
    ackWaitMs: input.ackWaitMs ?? 30_000,
    duplicateWindowMs: input.duplicateWindowMs ?? 120_000,
    finishedTtlMs: input.finishedTtlMs ?? 0,
    maxDeliveries: input.maxDeliveries ?? 1000,
    maxAckPending: input.maxAckPending ?? 10_000,
    replicas: input.replicas ?? 1,
    storage: input.storage ?? "file",
    publishTimeoutMs: input.publishTimeoutMs ?? 5000,
    publishAttempts: input.publishAttempts ?? 4,
    connectTimeoutMs: input.connectTimeoutMs ?? 5000,
    reconnectWaitMs: input.reconnectWaitMs ?? 250,
    maxReconnectWaitMs: input.maxReconnectWaitMs ?? 5000,
    idlePullMs: input.idlePullMs ?? 5000,
    events: resolveEventLogOptions(input.events, -1),
  };
  if (resolved.maxReconnectWaitMs < resolved.reconnectWaitMs) {
    throw new ConfigError(
      `NATS transport: maxReconnectWaitMs (${resolved.maxReconnectWaitMs}) is below reconnectWaitMs (${resolved.reconnectWaitMs}).`,
    );
  }
  for (const key of [
    "token",
    "user",
    "password",
    "nkeySeed",
    "credsFile",
    "maxPayloadBytes",
    "maxWaiting",
  ] as const) {
    if (input[key] !== undefined) (resolved as unknown as Record<string, unknown>)[key] = input[key];
  }
  if (input.tls === true) resolved.tls = {};
  else if (typeof input.tls === "object") resolved.tls = { ...input.tls };
  return resolved;
}

/**
 * Options from a transport URL:
 *   nats://[user:password@ | token@]host[:port][,host2[:port]…][?namespace=app&name=svc&finishedTtlMs=3600000]
 *   tls://…  the same, with TLS required.
 * Explicit options win over the URL. Hosts with ports after the first arrive in the `servers`
 * query parameter (transportFromUrl moves them there, because a URL has a single authority).
 */
export function natsOptionsFromUrl(url: URL, options: Record<string, unknown> = {}): NatsTransportOptions {
  if (url.protocol !== "nats:" && url.protocol !== "tls:") {
    throw new ConfigError(`A NATS transport URL starts with nats:// or tls://, not ${url.protocol}//.`);
  }
  const withPort = (h: string) => (/:\d+$/.test(h) ? h : `${h}:4222`);
  const hosts = url.host.split(",").filter((h) => h.length > 0);
  const fromUrl: NatsTransportOptions = {};
  for (const [key, value] of url.searchParams) {
    if (key === "namespace") fromUrl.namespace = value;
    else if (key === "name") fromUrl.name = value;
    // The record of finished tasks is opt-in; CLI workers take it from the URL like the rest.
    else if (key === "finishedTtlMs")
      fromUrl.finishedTtlMs = intParam(
        "The NATS URL parameter finishedTtlMs",
        value,
        SCHEMA.finishedTtlMs as (v: unknown) => string | undefined,
      );
    else if (key === "servers") hosts.push(...value.split(",").filter((h) => h.length > 0));
    else {
      throw new ConfigError(
        `Unknown query parameter "${key}" in a NATS transport URL; known: namespace, name, finishedTtlMs. ` +
          "Pass other options in the second argument of transportFromUrl().",
      );
    }
  }
  const scheme = url.protocol === "tls:" ? "tls" : "nats";
  fromUrl.servers = hosts.map((h) => `${scheme}://${withPort(h)}`);
  const user = decodeUrlPart(url.username, "user");
  const password = decodeUrlPart(url.password, "password");
  if (user && password) {
    fromUrl.user = user;
    fromUrl.password = password;
  } else if (user) {
    fromUrl.token = user;
  }
  if (url.protocol === "tls:") fromUrl.tls = true;
  const merged: Record<string, unknown> = { ...fromUrl };
  for (const [key, value] of Object.entries(options)) if (value !== undefined) merged[key] = value;
  if (options["token"] !== undefined || options["user"] !== undefined) {
    if (options["token"] === undefined) delete merged["token"];
    if (options["user"] === undefined) {
      delete merged["user"];
      delete merged["password"];
    }
  }
  if (url.protocol === "tls:" && merged["tls"] === false) {
    throw new ConfigError('A tls:// URL requires TLS; remove the option "tls: false" or use nats://.');
  }
  return merged as NatsTransportOptions;
}
