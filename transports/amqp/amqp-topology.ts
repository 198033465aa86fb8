/**
 * Declares the queues and exchanges the transport uses, once per connection (RabbitMQ keeps
 * durable ones across restarts, but a reconnection may reach a node that lost them), on a channel
 * of its own so a refused declaration never takes the publish channel down. Remembers what it
 * declared, to delete it on close when asked.
 */
import type { Channel, Options } from "amqplib";
import { ConfigError, StateError, TransportError } from "../../src/errors.js";
import type { Logger } from "../../src/logger.js";
import { deadLetterQueueOf } from "../transport.js";
import type { AmqpConnection } from "./amqp-connection.js";
import { type AmqpNames, WAIT_QUEUE_SPARE_MS } from "./amqp-names.js";

type BrokerError = Error & { code?: number };

/** A declaration to make again: the queue exists with another storage version, now adopted. */
class DeclareAgain extends Error {}

/**
 * The storage version of an existing queue, from RabbitMQ's refusal to declare it with another:
 * `inequivalent arg 'x-queue-version' … current is none` (1) or `… current is the value '2' …`.
 */
function existingQueueVersion(error: unknown): 1 | 2 | undefined {
  const e = error as BrokerError;
  if (e?.code !== 406 || typeof e.message !== "string" || !e.message.includes("'x-queue-version'")) {
    return undefined;
  }
  const current = /current is (none|the value '(\d+)')/.exec(e.message);
  if (!current) return undefined;
  if (current[1] === "none" || current[2] === "1") return 1;
  return current[2] === "2" ? 2 : undefined;
}

export class AmqpTopology {
  private channel?: Channel;
  private opening?: Promise<Channel>;
  private readonly declared = new Map<string, Promise<void>>();
  /** The declarations of `declared` that completed (checked without awaiting). */
  private readonly done = new Set<string>();
  private readonly waitDeclaredAt = new Map<number, number>();
  private readonly queues = new Set<string>();
  private readonly exchanges = new Set<string>();

  constructor(
    private readonly connection: AmqpConnection,
    private readonly names: AmqpNames,
    private readonly logger: Logger,
  ) {
    connection.onUp(() => this.forgetDeclarations());
  }

  /** A work queue (and its dead-letter queue), declared if this connection has not yet. */
  ensureQueue(logical: string, deadline: number): Promise<void> {
    return this.once(this.keyOfQueue(logical), deadline, async (ch) => {
      if (!this.names.isDeadLetterQueue(logical)) {
        await this.declareQueue(ch, deadLetterQueueOf(logical));
      }
      await this.declareQueue(ch, logical);
    });
  }

  /** Declares the RabbitMQ queue(s) of a logical queue; returns their ready messages. */
  private async declareQueue(ch: Channel, logical: string): Promise<number> {
    if (this.names.queueType === "quorum") {
      let ready = 0;
      const options = this.names.queueOptions(logical);
      for (const name of this.names.physicalQueues(logical)) {
        this.queues.add(name);
        ready += (await ch.assertQueue(name, options)).messageCount;
      }
      return ready;
    }
    const name = this.names.queue(logical);
    this.queues.add(name);
    try {
      const ok = await ch.assertQueue(name, this.names.queueOptions(logical));
      return ok.messageCount;
    } catch (error) {
      const version = existingQueueVersion(error);
      if (version === undefined || !this.names.adoptQueueVersion(logical, version)) throw error;
      this.logger.warn(
        { queue: name, queueVersion: version },
        "the queue exists with another storage version (x-queue-version) than this transport's queueVersion; " +
          "it is used as it is",
      );
      throw new DeclareAgain(`declare ${name} again with x-queue-version ${version}`, { cause: error });
    }
  }

  /** Ready messages of a work queue (not unacked ones). Declares it if needed. */
  async depth(logical: string, deadline: number): Promise<number> {
    await this.ensureQueue(logical, deadline);
    return this.run(deadline, (ch) => this.declareQueue(ch, logical));
  }

  ensureExchange(name: string, type: "topic" | "headers", deadline: number): Promise<void> {
    return this.once(`x:${name}`, deadline, async (ch) => {
      this.exchanges.add(name);
      await ch.assertExchange(name, type, { durable: true });
    });
  }

  /**
   * The wait queue of a delay bucket, bound to the delay exchange. Wait queues expire when
   * unused (x-expires); publishing does not count as use, so the declaration is renewed well
   * before a message in it could outlive the queue.
   */
  async ensureWaitQueue(bucketMs: number, deadline: number): Promise<void> {
    await this.ensureExchange(this.names.delayExchange, "headers", deadline);
    const at = this.waitDeclaredAt.get(bucketMs);
    if (at !== undefined && Date.now() - at > WAIT_QUEUE_SPARE_MS / 2) this.forget(this.keyOfWait(bucketMs));
    await this.once(this.keyOfWait(bucketMs), deadline, async (ch) => {
      const name = this.names.waitQueue(bucketMs);
      this.queues.add(name);
      await ch.assertQueue(name, this.names.waitQueueOptions(bucketMs));
      await ch.bindQueue(name, this.names.delayExchange, "", {
        "x-match": "all",
        "x-fa-delay": String(bucketMs),
      });
      this.waitDeclaredAt.set(bucketMs, Date.now());
    });
  }

  /** Declares a queue with the given options (subscriber queues); not cached. */
  declareRaw(name: string, options: Options.AssertQueue, deadline: number): Promise<string> {
    return this.run(deadline, async (ch) => (await ch.assertQueue(name, options)).queue);
  }

  /** Whether the work queue was declared on this connection already (a check that does not wait). */
  hasQueue(logical: string): boolean {
    return this.done.has(this.keyOfQueue(logical));
  }

  /** Whether the exchange was declared on this connection already (a check that does not wait). */
  hasExchange(name: string): boolean {
    return this.done.has(`x:${name}`);
  }

  /** Forgets one declaration (the entity vanished), or all (a new connection). */
  forget(key: string): void {
    this.declared.delete(key);
    this.done.delete(key);
  }

  forgetDeclarations(): void {
    this.declared.clear();
    this.done.clear();
  }

  keyOfQueue(logical: string): string {
    return `q:${logical}`;
  }

  keyOfWait(bucketMs: number): string {
    return `w:${bucketMs}`;
  }

  private once(key: string, deadline: number, declare: (ch: Channel) => Promise<void>): Promise<void> {
    let done = this.declared.get(key);
    if (!done) {
      const declaring = this.run(deadline, declare);
      done = declaring;
      this.declared.set(key, declaring);
      declaring.then(
        () => {
          if (this.declared.get(key) === declaring) this.done.add(key);
        },
        () => {
          if (this.declared.get(key) === declaring) this.declared.delete(key);
        },
      );
    }
    return done;
  }

  /** Runs broker calls on the topology channel (other capabilities' declarations: the event log). */
  exec<T>(deadline: number, op: (ch: Channel) => Promise<T>): Promise<T> {
    return this.run(deadline, op);
  }

  /** Runs broker calls on the topology channel; retries across reconnections until `deadline`. */
  private async run<T>(deadline: number, op: (ch: Channel) => Promise<T>): Promise<T> {
    for (;;) {
      let ch: Channel;
      try {
        ch = await this.ready(deadline);
        return await op(ch);
      } catch (error) {
        if (error instanceof DeclareAgain) {
          // The refusal closed the channel: declare again on a new one.
          this.channel = undefined;
          continue;
        }
        const code = (error as BrokerError).code;
        if (typeof code === "number" && code >= 300 && this.connection.current)
          throw translate(error as BrokerError);
        if (error instanceof StateError) throw error;
        if (error instanceof TransportError || Date.now() >= deadline) {
          throw new TransportError(`Could not declare on RabbitMQ: ${(error as Error).message}`, {
            cause: error,
            retryable: true,
          });
        }
        // The connection went down under the call: wait for the next one (briefly, if it is not noticed yet).
        await new Promise((resolve) => setTimeout(resolve, 100));
        await this.connection.whenUp(deadline).catch(() => {});
      }
    }
  }

  private async ready(deadline: number): Promise<Channel> {
    if (this.channel) return this.channel;
    this.opening ??= (async () => {
      const ch = await this.connection.channel(false, deadline);
      ch.on("close", () => {
        if (this.channel === ch) this.channel = undefined;
      });
      this.channel = ch;
      return ch;
    })().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  /** Deletes every queue and exchange this transport declared (best effort). */
  async deleteAll(): Promise<void> {
    if (!this.connection.current) return;
    const deadline = Date.now() + 5000;
    for (const queue of this.queues) {
      await this.run(deadline, (ch) => ch.deleteQueue(queue)).catch((error: Error) => {
        this.logger.debug({ queue, err: error.message }, "could not delete an AMQP queue");
      });
    }
    for (const exchange of this.exchanges) {
      await this.run(deadline, (ch) => ch.deleteExchange(exchange)).catch(() => {});
    }
    this.queues.clear();
    this.exchanges.clear();
    this.forgetDeclarations();
  }

  async close(): Promise<void> {
    const ch = this.channel;
    this.channel = undefined;
    await ch?.close().catch(() => {});
  }
}

function translate(error: BrokerError): Error {
  if (error.code === 406) {
    return new ConfigError(
      `RabbitMQ refused a declaration: ${error.message}. A queue or exchange of that name already exists ` +
        "with other settings (declared by another tool or version): delete it, or use another namespace.",
      { cause: error },
    );
  }
  return new TransportError(`RabbitMQ refused an operation: ${error.message}`, { cause: error });
}
