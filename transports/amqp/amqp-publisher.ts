/**
 * Every message the transport sends goes through one confirm channel. Publishes are pipelined:
 * each one resolves when the broker confirms it, without waiting for the previous confirm
 * before sending the next. A publish caught by a lost channel or connection is sent again on
 * the next one; during an outage or broker flow control it waits, up to its deadline, then fails
 * with PublishError. Mandatory publishes that the broker returns (no queue bound) fail with a
 * PublishError that `isUnroutable`, so the caller can re-declare and try again.
 */
import type { ConfirmChannel, Message, Options } from "amqplib";
import { PublishError, StateError } from "../../src/errors.js";
import type { Logger } from "../../src/logger.js";
import type { AmqpConnection } from "./amqp-connection.js";

export interface OutgoingMessage {
  exchange: string;
  routingKey: string;
  content: Buffer;
  /** This message's own properties object: the publisher adds `mandatory` and `messageId` to it. */
  properties: Options.Publish;
  /** Ask the broker to return the message if no queue takes it. */
  mandatory?: boolean;
}

const unroutable = new WeakSet<Error>();

/** The broker returned a mandatory message: nothing was bound to take it (re-declare, then retry). */
export function isUnroutable(error: unknown): boolean {
  return error instanceof Error && unroutable.has(error);
}

interface InFlight {
  id: string;
  deadline: number;
  returned: boolean;
  fail: (error: Error) => void;
}

/** Marks a broker channel error on the publish path (e.g. 404: the exchange does not exist). */
export type ChannelErrorListener = (error: Error & { code?: number }) => void;

export class AmqpPublisher {
  private channel?: ConfirmChannel;
  private opening?: Promise<ConfirmChannel>;
  private drain?: Promise<void>;
  private readonly inFlight = new Map<string, InFlight>();
  /** The reply code with which the broker closed a channel. */
  private readonly refusedBy = new WeakMap<ConfirmChannel, number>();
  private sweeper?: ReturnType<typeof setInterval>;
  private idleWaiters: Array<() => void> = [];
  private seq = 0;
  private closed = false;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly logger: Logger,
    private readonly onChannelError: ChannelErrorListener,
  ) {}

  /** In-flight publishes (sent, not yet confirmed). */
  get pending(): number {
    return this.inFlight.size;
  }

  /**
   * Resolves once the broker confirmed the message; retries across reconnections until
   * `deadline`. When the channel is open and has room, the message is published at once (no
   * await before it): one promise and one record per message, nothing else.
   */
  send(message: OutgoingMessage, deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => this.attempt(message, deadline, resolve, reject));
  }

  private attempt(
    message: OutgoingMessage,
    deadline: number,
    resolve: () => void,
    reject: (error: Error) => void,
  ): void {
    const channel = this.channel;
    if (channel && !this.closed && !this.drain && !this.connection.blocked) {
      this.sendOn(channel, message, deadline, resolve, reject);
      return;
    }
    this.ready(deadline).then(
      (ready) => this.sendOn(ready, message, deadline, resolve, reject),
      (error: Error) => reject(error),
    );
  }

  /** "Lost": the channel closed before the confirm; send again on the next one, within the deadline. */
  private retry(
    lost: ConfirmChannel,
    message: OutgoingMessage,
    deadline: number,
    resolve: () => void,
    reject: (error: Error) => void,
  ): void {
    // amqplib fails the confirms of a closing channel before its "close" listeners run: never reuse it.
    if (this.channel === lost) {
      this.channel = undefined;
      try {
        lost.close().catch(() => {});
      } catch {
        // closing or closed already
      }
    }
    if (Date.now() >= deadline) reject(this.timeout(deadline));
    else this.attempt(message, deadline, resolve, reject);
  }

  private sendOn(
    channel: ConfirmChannel,
    message: OutgoingMessage,
    deadline: number,
    resolve: () => void,
    reject: (error: Error) => void,
  ): void {
    const id = `${++this.seq}`;
    const record: InFlight = { id, deadline, returned: false, fail: reject };
    this.inFlight.set(id, record);
    this.startSweeper();
    const properties = message.properties;
    if (message.mandatory) {
      properties.mandatory = true;
      properties.messageId = id;
    }
    let writable: boolean;
    try {
      writable = channel.publish(
        message.exchange,
        message.routingKey,
        message.content,
        properties,
        (error) => {
          if (!this.forget(id)) return; // already failed by the sweeper
          if (error === null || error === undefined) {
            if (!record.returned) resolve();
            else {
              const e = new PublishError(`No queue took the message routed to "${message.routingKey}".`);
              unroutable.add(e);
              reject(e);
            }
          } else if (String((error as Error).message).includes("nacked")) {
            reject(
              new PublishError(`RabbitMQ refused the message for "${message.routingKey}" (basic.nack).`, {
                retryable: true,
              }),
            );
          } else if (this.refusedBy.get(channel) === 404) {
            // The broker closed the channel because the exchange does not exist (deleted by hand).
            const e = new PublishError(`The exchange "${message.exchange}" does not exist.`, {
              retryable: true,
            });
            unroutable.add(e);
            reject(e);
          } else {
            this.retry(channel, message, deadline, resolve, reject);
          }
        },
      );
    } catch (error) {
      // The channel closed between ready() and publish(): try again on the next one.
      this.forget(id);
      if (error instanceof RangeError) {
        reject(new PublishError(`The message headers are too large: ${error.message}`, { cause: error }));
      } else this.retry(channel, message, deadline, resolve, reject);
      return;
    }
    if (!writable && !this.drain) {
      this.drain = new Promise<void>((done) => {
        const finish = () => {
          channel.off("drain", finish);
          channel.off("close", finish);
          this.drain = undefined;
          done();
        };
        channel.on("drain", finish);
        channel.on("close", finish);
      });
    }
  }

  /** The open confirm channel, once connected, not flow-controlled and with room in its buffer. */
  private async ready(deadline: number): Promise<ConfirmChannel> {
    for (;;) {
      if (this.closed) throw new StateError("The AMQP transport is closed; the message was not sent.");
      if (this.connection.blocked && !(await this.connection.whenUnblocked(deadline))) {
        throw this.timeout(deadline, "RabbitMQ kept applying flow control (connection.blocked)");
      }
      if (this.drain) {
        await this.drain;
        continue;
      }
      if (this.channel) return this.channel;
      try {
        this.opening ??= this.open(deadline).finally(() => {
          this.opening = undefined;
        });
        return await this.opening;
      } catch (error) {
        if (this.closed) throw new StateError("The AMQP transport is closed; the message was not sent.");
        if (Date.now() >= deadline) throw this.timeout(deadline, (error as Error).message);
      }
    }
  }

  private async open(deadline: number): Promise<ConfirmChannel> {
    const channel = await this.connection.channel(true, deadline);
    channel.on("return", (returned: Message) => {
      const record = this.inFlight.get(String(returned.properties.messageId));
      if (record) record.returned = true;
    });
    channel.on("error", (error: Error & { code?: number }) => {
      if (typeof error.code === "number") this.refusedBy.set(channel, error.code);
      this.onChannelError(error);
    });
    channel.on("close", () => {
      if (this.channel === channel) this.channel = undefined;
    });
    if (this.closed) {
      await channel.close().catch(() => {});
      throw new StateError("The AMQP transport is closed.");
    }
    this.channel = channel;
    return channel;
  }

  private timeout(deadline: number, why = "the broker did not confirm it"): PublishError {
    const waited = Math.max(0, Date.now() - deadline);
    return new PublishError(
      `RabbitMQ did not take the message within publishTimeoutMs (${why}; ${waited} ms past the deadline). ` +
        "It may or may not have been queued; a retry can duplicate it.",
      { retryable: true },
    );
  }

  /**
   * One timer for every in-flight publish: fails those past their deadline. It stops itself when
   * it finds nothing in flight, rather than with the last confirm, so a steady trickle of
   * publishes does not start and stop a timer for each message.
   */
  private startSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      if (this.inFlight.size === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
        return;
      }
      const now = Date.now();
      for (const record of this.inFlight.values()) {
        if (record.deadline <= now && this.forget(record.id)) record.fail(this.timeout(record.deadline));
      }
    }, 250);
    this.sweeper.unref();
  }

  private forget(id: string): boolean {
    if (!this.inFlight.delete(id)) return false;
    if (this.inFlight.size === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
    return true;
  }

  /** Waits (up to `ms`) for in-flight publishes, then fails the rest and closes the channel. */
  async close(ms: number): Promise<void> {
    if (this.inFlight.size > 0 && this.connection.current) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
    }
    this.closed = true;
    for (const record of this.inFlight.values()) {
      record.fail(new PublishError("The AMQP transport closed before the broker confirmed the message."));
    }
    this.inFlight.clear();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    const channel = this.channel;
    this.channel = undefined;
    await channel?.close().catch(() => {});
    this.logger.debug({}, "AMQP publisher closed");
  }
}
