/**
 * One AMQP connection that comes back by itself. amqplib does not reconnect channels or
 * topology, so this layer owns the connection: it reconnects with exponential back-off after a
 * loss, reports every state change, tracks broker flow control (connection.blocked), and tells
 * the channels' owners (publisher, topology, consumers, fan-out) when a new connection is up so
 * they re-open their channels and re-declare what they need.
 */
import { type Channel, type ChannelModel, type ConfirmChannel, connect } from "amqplib";
import { ConnectionError, StateError } from "../../src/errors.js";
import type { Logger } from "../../src/logger.js";
import type { TransportState, TransportStatusEvent } from "../transport.js";
import type { ResolvedAmqpOptions } from "./amqp-options.js";
import { coalesceWrites } from "./amqp-socket.js";

type Waiter = { resolve: (model: ChannelModel) => void; reject: (error: Error) => void };

export class AmqpConnection {
  private model?: ChannelModel;
  private _state: TransportState = "idle";
  private connecting?: Promise<void>;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private closed = false;
  private _blocked = false;
  private readyWaiters = new Set<Waiter>();
  private unblockWaiters = new Set<() => void>();
  private readonly statusListeners = new Set<(event: TransportStatusEvent) => void>();
  private readonly upListeners = new Set<(model: ChannelModel) => void>();
  /** Increments with every new connection. */
  generation = 0;
  /**
   * Whether more than one message is under way (set by the transport): then the frames of one
   * multiplexer pass leave in one socket write (see amqp-socket.ts).
   */
  busy: () => boolean = () => true;

  constructor(
    private readonly options: ResolvedAmqpOptions,
    private readonly logger: Logger,
  ) {}

  get state(): TransportState {
    return this._state;
  }

  /** True while the broker refuses to read from this connection (a resource alarm). */
  get blocked(): boolean {
    return this._blocked;
  }

  /** The live connection, if there is one. */
  get current(): ChannelModel | undefined {
    return this.model;
  }

  onStatus(listener: (event: TransportStatusEvent) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /** Called after every (re)connection with the new connection. */
  onUp(listener: (model: ChannelModel) => void): () => void {
    this.upListeners.add(listener);
    return () => this.upListeners.delete(listener);
  }

  /** The first connection: keeps trying for connectTimeoutMs, except when the broker refuses us. */
  connect(): Promise<void> {
    if (this.closed)
      return Promise.reject(new StateError("This AmqpTransport was closed; create a new one."));
    if (this.model) return Promise.resolve();
    if (this._state === "reconnecting") {
      // The reconnection loop is at work: wait for it (bounded like a first connection).
      return this.whenUp(Date.now() + this.options.connectTimeoutMs).then(() => undefined);
    }
    this.connecting ??= this.firstConnect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async firstConnect(): Promise<void> {
    this.setState("connecting");
    const deadline = Date.now() + this.options.connectTimeoutMs;
    let delay = this.options.reconnect.initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.open(Math.max(1000, deadline - Date.now()));
        return;
      } catch (error) {
        const fatal = isRefusal(error);
        if (this.closed) throw new StateError("The AMQP transport was closed while connecting.");
        if (fatal || Date.now() + delay >= deadline) {
          this.setState("idle", error as Error);
          throw new ConnectionError(
            `Could not connect to RabbitMQ at ${this.options.where} ` +
              (fatal ? "" : `within ${this.options.connectTimeoutMs} ms (${attempt} attempts)`) +
              `: ${(error as Error).message}`,
            { cause: error, retryable: !fatal },
          );
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, this.options.reconnect.maxDelayMs);
      }
    }
  }

  private async open(timeoutMs: number): Promise<void> {
    const model = await connect(this.options.connect, { ...this.options.socket, timeout: timeoutMs });
    if (this.closed) {
      await model.close().catch(() => {});
      throw new StateError("The transport was closed while connecting.");
    }
    if (!coalesceWrites(model, () => this.busy()))
      this.logger.debug({}, "amqplib's writer has an unknown shape: frames are written one by one");
    model.on("error", (error: Error) => {
      this.logger.warn({ err: error.message }, "AMQP connection error");
    });
    model.on("close", (error?: Error) => this.lost(model, error));
    model.on("blocked", (reason: string) => {
      this._blocked = true;
      this.logger.warn({ reason }, "RabbitMQ applies flow control (connection.blocked): publishes wait");
    });
    model.on("unblocked", () => this.unblock());
    this.model = model;
    this.generation++;
    this._blocked = false;
    this.setState("connected");
    for (const w of this.readyWaiters) w.resolve(model);
    this.readyWaiters.clear();
    for (const listener of this.upListeners) {
      try {
        listener(model);
      } catch (error) {
        this.logger.error({ err: (error as Error).message }, "AMQP reconnect listener failed");
      }
    }
  }

  private lost(model: ChannelModel, error?: Error): void {
    if (this.model !== model) return;
    this.model = undefined;
    this.unblock();
    if (this.closed) return;
    const why = error ?? new ConnectionError("The broker closed the connection.");
    this.logger.warn({ err: why.message }, "AMQP connection lost: reconnecting");
    this.setState("reconnecting", why);
    this.scheduleReconnect(this.options.reconnect.initialDelayMs);
  }

  private scheduleReconnect(delay: number): void {
    if (this.closed) return;
    const jittered = Math.round(delay * (0.8 + Math.random() * 0.4));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.open(Math.max(2000, this.options.connectTimeoutMs)).catch((error: Error) => {
        if (this.closed) return;
        this.logger.debug({ err: error.message }, "AMQP reconnect attempt failed");
        this.scheduleReconnect(Math.min(delay * 2, this.options.reconnect.maxDelayMs));
      });
    }, jittered);
  }

  private unblock(): void {
    if (!this._blocked && this.unblockWaiters.size === 0) return;
    this._blocked = false;
    for (const w of this.unblockWaiters) w();
    this.unblockWaiters.clear();
  }

  /**
   * A live connection: at once, or when the next reconnection succeeds. Rejects after `deadline`
   * (epoch ms; undefined: no limit), or when the transport closes.
   */
  whenUp(deadline?: number): Promise<ChannelModel> {
    if (this.model) return Promise.resolve(this.model);
    if (this.closed) return Promise.reject(new StateError("The AMQP transport is closed."));
    return new Promise<ChannelModel>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiter: Waiter = {
        resolve: (model) => {
          if (timer) clearTimeout(timer);
          resolve(model);
        },
        reject: (error) => {
          if (timer) clearTimeout(timer);
          reject(error);
        },
      };
      if (deadline !== undefined) {
        timer = setTimeout(
          () => {
            this.readyWaiters.delete(waiter);
            reject(new ConnectionError(`RabbitMQ at ${this.options.where} is unreachable (${this._state}).`));
          },
          Math.max(0, deadline - Date.now()),
        );
      }
      this.readyWaiters.add(waiter);
    });
  }

  /** Resolves when the broker lifts flow control (or the connection is lost), or at `deadline`. */
  whenUnblocked(deadline: number): Promise<boolean> {
    if (!this._blocked) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(
        () => {
          this.unblockWaiters.delete(done);
          resolve(false);
        },
        Math.max(0, deadline - Date.now()),
      );
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.unblockWaiters.add(done);
    });
  }

  /** A new channel on the live connection, with an error listener (an unhandled one would crash). */
  async channel(confirm: false, deadline?: number): Promise<Channel>;
  async channel(confirm: true, deadline?: number): Promise<ConfirmChannel>;
  async channel(confirm: boolean, deadline?: number): Promise<Channel | ConfirmChannel> {
    const model = await this.whenUp(deadline);
    const channel = confirm ? await model.createConfirmChannel() : await model.createChannel();
    channel.on("error", (error: Error) => {
      this.logger.debug({ err: error.message }, "AMQP channel closed by the broker");
    });
    return channel;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const error = new StateError("The AMQP transport is closed.");
    for (const w of this.readyWaiters) w.reject(error);
    this.readyWaiters.clear();
    this.unblock();
    const model = this.model;
    this.model = undefined;
    if (model) {
      // A blackholed socket would never answer connection.close: bound the wait.
      await Promise.race([model.close().catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    this.setState("closed");
  }

  private setState(state: TransportState, error?: Error): void {
    if (this._state === state && error === undefined) return;
    this._state = state;
    const event: TransportStatusEvent = error ? { state, error } : { state };
    for (const listener of this.statusListeners) {
      try {
        listener(event);
      } catch (e) {
        this.logger.error({ err: (e as Error).message }, "an onStatus listener threw");
      }
    }
  }
}

/** The broker answered and said no (bad credentials, unknown vhost): retrying will not help. */
function isRefusal(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /ACCESS.REFUSED|NOT.ALLOWED|\b403\b|\b530\b|Expected ConnectionOpenOk/.test(message);
}
