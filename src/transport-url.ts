/**
 * `transportFromUrl(url)`: one environment variable swaps a deployment's transport.
 *   memory://                          the embedded transport (one process)
 *   nats://[user:pass@]host:4222[,host2:4222][?namespace=app]
 *   amqp://user:pass@host:5672/vhost[?namespace=app]   (amqps:// for TLS)
 * Broker adapters load on connect(), so an in-memory deployment never loads a broker client.
 */

import { amqpOptionsFromUrl, resolveAmqpOptions } from "../transports/amqp/amqp-options.js";
import type { DeadLetters } from "../transports/dead-letters.js";
import type { DeliveryRelease } from "../transports/delivery-release.js";
import type { EntityMailbox } from "../transports/entity-mailbox.js";
import type { EventLog } from "../transports/event-log.js";
import type { FinishedRecord } from "../transports/finished-record.js";
import { InMemoryTransport, type InMemoryTransportOptions } from "../transports/memory/memory.transport.js";
import { natsOptionsFromUrl, resolveNatsOptions } from "../transports/nats/nats-options.js";
import type { StateStore } from "../transports/state-store.js";
import type {
  Bytes,
  ConsumeOptions,
  Consumer,
  DeliveryHandler,
  EnqueueOptions,
  FanoutMessage,
  PublishOptions,
  Subscription,
  Transport,
  TransportState,
  TransportStatusEvent,
} from "../transports/transport.js";
import type { Clock } from "./clock.js";
import { definedOnly } from "./config.js";
import { ConfigError, StateError } from "./errors.js";
import { redactUrl } from "./url-redaction.js";

export interface TransportUrlOptions {
  /** Prefix of every subject, stream and queue name, so applications can share a broker. */
  namespace?: string;
  clock?: Clock;
  /** Adapter-specific options (TLS, credentials files, …), passed through. */
  [key: string]: unknown;
}

type Factory = (url: URL, options: TransportUrlOptions) => Transport;

function forwardDeadLetters(store: () => DeadLetters): DeadLetters {
  return {
    list: (queue, options) => store().list(queue, options),
    count: (queue) => store().count(queue),
    get: (queue, id) => store().get(queue, id),
    retry: (queue, id, options) => store().retry(queue, id, options),
    delete: (queue, id) => store().delete(queue, id),
    purge: (queue) => store().purge(queue),
    queues: () => store().queues(),
  };
}

const LOADERS: Record<string, () => Promise<Factory>> = {
  "nats:": async () => (await import("../transports/nats/index.js")).natsTransportFromUrl as Factory,
  "tls:": async () => (await import("../transports/nats/index.js")).natsTransportFromUrl as Factory,
  "amqp:": async () => (await import("../transports/amqp/index.js")).amqpTransportFromUrl as Factory,
  "amqps:": async () => (await import("../transports/amqp/index.js")).amqpTransportFromUrl as Factory,
};

export function transportFromUrl(url: string | undefined, options: TransportUrlOptions = {}): Transport {
  const raw = (url || process.env["FASTAGENTIC_TRANSPORT"] || "memory://").trim();
  let parsed: URL;
  try {
    parsed = parseWithSeveralHosts(raw);
  } catch {
    // No `cause`: the URL parser's error carries the raw input, credentials included.
    throw new ConfigError(
      `"${redactUrl(raw)}" is not a transport URL. Use memory://, nats://host:4222 or amqp://user:pass@host:5672/vhost.`,
    );
  }
  if (parsed.protocol === "memory:") return memoryTransport(parsed, options);
  const load = LOADERS[parsed.protocol];
  if (!load) {
    throw new ConfigError(
      `Unsupported transport scheme "${parsed.protocol}" in "${redactUrl(parsed)}". ` +
        "Use memory://, nats:// (or tls://) or amqp:// (or amqps://).",
    );
  }
  if (!parsed.hostname) throw new ConfigError(`The transport URL "${redactUrl(parsed)}" has no host.`);
  // The adapter loads on connect(); its options are checked now, by the rules it will apply.
  CHECK_OPTIONS[parsed.protocol]?.(parsed, options);
  return new LazyTransport(parsed, load, options);
}

const checkNats = (url: URL, options: TransportUrlOptions) =>
  void resolveNatsOptions(natsOptionsFromUrl(url, options));
const checkAmqp = (url: URL, options: TransportUrlOptions) =>
  void resolveAmqpOptions(amqpOptionsFromUrl(url, options));
const CHECK_OPTIONS: Record<string, (url: URL, options: TransportUrlOptions) => void> = {
  "nats:": checkNats,
  "tls:": checkNats,
  "amqp:": checkAmqp,
  "amqps:": checkAmqp,
};

/** `memory://[?namespace=ns]`: nothing else means anything in one process, so nothing else is taken. */
function memoryTransport(url: URL, options: TransportUrlOptions): InMemoryTransport {
  if (url.username || url.password || url.host || (url.pathname !== "" && url.pathname !== "/")) {
    throw new ConfigError(
      `"${redactUrl(url)}": the in-memory transport takes no host, credentials or path; use memory:// ` +
        "(or memory://?namespace=app).",
    );
  }
  const fromUrl: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (key !== "namespace") {
      throw new ConfigError(`Unknown query parameter "${key}" in a memory:// URL; known: namespace.`);
    }
    fromUrl[key] = value;
  }
  if (
    fromUrl["namespace"] !== undefined &&
    options.namespace !== undefined &&
    fromUrl["namespace"] !== options.namespace
  ) {
    throw new ConfigError(
      `The memory:// URL says namespace "${fromUrl["namespace"]}" but the options say "${options.namespace}"; give it once.`,
    );
  }
  return new InMemoryTransport({ ...fromUrl, ...definedOnly(options) } as InMemoryTransportOptions);
}

/**
 * A URL has a single authority, so "nats://a:4222,b:4222" keeps its first host there and carries
 * the others in a `servers` query parameter, which the NATS adapter reads.
 */
function parseWithSeveralHosts(raw: string): URL {
  const several = /^((?:nats|tls):\/\/(?:[^@/?#]*@)?)([^@/?#]*,[^/?#]*)(.*)$/i.exec(raw);
  if (!several) return new URL(raw);
  const [first = "", ...others] = (several[2] as string).split(",").filter((h) => h.length > 0);
  const parsed = new URL(`${several[1]}${first}${several[3]}`);
  if (others.length > 0) parsed.searchParams.set("servers", others.join(","));
  return parsed;
}

/** A transport whose adapter module is imported on connect(). */
class LazyTransport implements Transport {
  private inner?: Transport;
  private loading?: Promise<Transport>;
  private readonly pendingListeners = new Set<(e: TransportStatusEvent) => void>();
  /** The adapter's entity capabilities, once connected (when it has them). */
  entityMailbox?: () => EntityMailbox;
  stateStore?: () => StateStore;

  constructor(
    private readonly url: URL,
    private readonly load: () => Promise<Factory>,
    private readonly options: TransportUrlOptions,
  ) {}

  get kind(): string {
    return this.inner?.kind ?? (this.url.protocol.startsWith("amqp") ? "amqp" : "nats");
  }

  get maxPayloadBytes(): number {
    return this.inner?.maxPayloadBytes ?? 1024 * 1024;
  }

  get ackDeadlineMs(): number | undefined {
    return this.inner?.ackDeadlineMs;
  }

  get reliableFanout(): boolean | undefined {
    return this.inner?.reliableFanout;
  }

  get state(): TransportState {
    return this.inner?.state ?? "idle";
  }

  /** The adapter, once connected (e.g. to reach adapter-specific methods). */
  get adapter(): Transport | undefined {
    return this.inner;
  }

  async connect(): Promise<void> {
    this.loading ??= this.load().then((factory) => {
      const inner = factory(this.url, this.options);
      for (const l of this.pendingListeners) inner.onStatus(l);
      if (inner.entityMailbox) this.entityMailbox = () => (inner.entityMailbox as () => EntityMailbox)();
      if (inner.stateStore) this.stateStore = () => (inner.stateStore as () => StateStore)();
      this.inner = inner;
      return inner;
    });
    await (await this.loading).connect();
  }

  async close(): Promise<void> {
    await this.inner?.close();
  }

  onStatus(listener: (event: TransportStatusEvent) => void): () => void {
    if (this.inner) return this.inner.onStatus(listener);
    this.pendingListeners.add(listener);
    return () => this.pendingListeners.delete(listener);
  }

  private get connected(): Transport {
    if (!this.inner)
      throw new StateError(`The transport ${redactUrl(this.url)} is not connected; call connect() first.`);
    return this.inner;
  }

  async enqueue(queue: string, body: Bytes, options: EnqueueOptions): Promise<void> {
    return this.connected.enqueue(queue, body, options);
  }

  async consume(
    queues: readonly string[],
    onDelivery: DeliveryHandler,
    options: ConsumeOptions,
  ): Promise<Consumer> {
    return this.connected.consume(queues, onDelivery, options);
  }

  async depth(queue: string): Promise<number> {
    return this.connected.depth(queue);
  }

  async publish(subject: string, body: Bytes, options?: PublishOptions): Promise<void> {
    return this.connected.publish(subject, body, options);
  }

  async subscribe(subject: string, onMessage: (message: FanoutMessage) => void): Promise<Subscription> {
    return this.connected.subscribe(subject, onMessage);
  }

  eventLog(): EventLog {
    const inner = this.connected;
    if (typeof inner.eventLog !== "function") {
      throw new ConfigError(`The ${inner.kind} transport has no event log, so it cannot carry the EventBus.`);
    }
    return inner.eventLog();
  }

  /** The adapter's dead letters, looked up at each call (the adapter exists once connected). */
  deadLetters(): DeadLetters {
    return forwardDeadLetters(() => {
      const store = this.connected.deadLetters?.();
      if (!store) throw new ConfigError(`The transport ${redactUrl(this.url)} offers no dead-letters API.`);
      return store;
    });
  }

  async depthByPriority(queue: string): Promise<Record<number, number>> {
    const inner = this.connected;
    if (!inner.depthByPriority) return {};
    return inner.depthByPriority(queue);
  }

  deliveryRelease(): DeliveryRelease | undefined {
    return this.inner?.deliveryRelease?.();
  }

  finishedRecord(): FinishedRecord | undefined {
    return this.inner?.finishedRecord?.();
  }
}
