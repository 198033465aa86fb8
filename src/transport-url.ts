/**
 * `transportFromUrl(url)`: one environment variable swaps a deployment's transport.
 *   memory://                          the embedded transport (one process)
 *   nats://[user:pass@]host:4222[,host2:4222][?namespace=app]
 *   amqp://user:pass@host:5672/vhost[?namespace=app]   (amqps:// for TLS)
 * Broker adapters load on connect(), so an in-memory deployment never loads a broker client.
 */

import type { DeliveryRelease } from "../transports/delivery-release.js";
import { InMemoryTransport } from "../transports/memory/memory.transport.js";
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
import { ConfigError, StateError } from "./errors.js";

export interface TransportUrlOptions {
  /** Prefix of every subject, stream and queue name, so applications can share a broker. */
  namespace?: string;
  clock?: Clock;
  /** Adapter-specific options (TLS, credentials files, …), passed through. */
  [key: string]: unknown;
}

type Factory = (url: URL, options: TransportUrlOptions) => Transport;

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
  } catch (error) {
    throw new ConfigError(
      `"${raw}" is not a transport URL. Use memory://, nats://host:4222 or amqp://user:pass@host:5672/vhost.`,
      { cause: error },
    );
  }
  if (parsed.protocol === "memory:") {
    return new InMemoryTransport(options.clock ? { clock: options.clock } : {});
  }
  const load = LOADERS[parsed.protocol];
  if (!load) {
    throw new ConfigError(
      `Unsupported transport scheme "${parsed.protocol}" in "${redact(parsed)}". ` +
        "Use memory://, nats:// (or tls://) or amqp:// (or amqps://).",
    );
  }
  if (!parsed.hostname) throw new ConfigError(`The transport URL "${redact(parsed)}" has no host.`);
  return new LazyTransport(parsed, load, options);
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

/** The URL with its password hidden, for messages and logs. */
export function redact(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = "***";
  return copy.href;
}

/** A transport whose adapter module is imported on connect(). */
class LazyTransport implements Transport {
  private inner?: Transport;
  private loading?: Promise<Transport>;
  private readonly pendingListeners = new Set<(e: TransportStatusEvent) => void>();

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
      throw new StateError(`The transport ${redact(this.url)} is not connected; call connect() first.`);
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

  deliveryRelease(): DeliveryRelease | undefined {
    return this.inner?.deliveryRelease?.();
  }
}
