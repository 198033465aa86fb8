/**
 * Dead letters on RabbitMQ. A classic queue has no random access, so every operation but count
 * and purge is a bounded scan: on a channel of its own, messages are taken from the head of the
 * dead-letter queue with basic.get (unacked) until the letter (or the page) is found or
 * `maxScan` letters were looked at; the one acted on is acked (and, for a retry, first published
 * again, confirmed); closing the channel returns every other one to its place in the queue.
 *
 * Limits (see README): a letter beyond the first `maxScan` of its queue cannot be listed or
 * addressed (count and purge still see it); while a scan runs, the letters it holds are invisible
 * to other scans and consumers of that dead-letter queue. A letter's id is the `messageId` the
 * transport gave it when it died, or, for one dead-lettered by the broker itself, a digest of
 * its content and headers.
 */
import { createHash } from "node:crypto";
import type { Channel, ConsumeMessage, GetMessage, Options } from "amqplib";
import { describeThrown, FastAgenticError, TransportError } from "../../src/errors.js";
import {
  DEAD_LETTER_AT_HEADER,
  DEAD_LETTER_DELIVERIES_HEADER,
  type DeadLetter,
  type DeadLetterPage,
  type DeadLetters,
  type ListDeadLettersOptions,
  pageLimit,
  type RetryDeadLetterOptions,
  stampsOf,
  userHeadersOf,
} from "../dead-letters.js";
import { assertLogicalName, DEAD_LETTER_REASON_HEADER, deadLetterQueueOf } from "../transport.js";
import type { AmqpConnection } from "./amqp-connection.js";
import { newMessageProperties, readMeta } from "./amqp-messages.js";

/** What the dead letters need from the AMQP transport. */
export interface AmqpDeadLetterHost {
  readonly connection: AmqpConnection;
  readonly operationTimeoutMs: number;
  /** The RabbitMQ queue name of a logical queue. */
  queueName(logical: string): string;
  /** Publishes a new message (confirmed) to a work queue, declaring it if needed. */
  send(queue: string, content: Buffer, properties: Options.Publish): Promise<void>;
}

/** Letters looked at per operation at most (by default). */
export const DEFAULT_MAX_SCAN = 10_000;
const LETTER_ID = /^[A-Za-z0-9_-]{1,64}$/;

interface Held {
  message: GetMessage;
  letter: DeadLetter;
}

export class AmqpDeadLetters implements DeadLetters {
  constructor(
    private readonly host: AmqpDeadLetterHost,
    private readonly maxScan = DEFAULT_MAX_SCAN,
  ) {}

  async list(queue: string, options: ListDeadLettersOptions = {}): Promise<DeadLetterPage> {
    const limit = pageLimit(options.limit);
    const cursor = parseCursor(options.cursor);
    return this.scan<DeadLetterPage>(queue, { letters: [], next: undefined }, async (_ch, next) => {
      const seen: Held[] = [];
      let start = 0;
      for (let h = await next(); h; h = await next()) {
        seen.push(h);
        if (cursor && start === 0 && h.letter.id === cursor.id) start = seen.length;
        if ((!cursor || start > 0) && seen.length > start + limit) break;
      }
      // A cursor whose letter is gone resumes at its position.
      if (cursor && start === 0) start = Math.min(cursor.position, seen.length);
      const page = seen.slice(start, start + limit).map((h) => h.letter);
      const more = seen.length > start + limit;
      const last = page[page.length - 1];
      return { letters: page, next: more && last ? `${start + page.length}.${last.id}` : undefined };
    });
  }

  async count(queue: string): Promise<number> {
    return this.withChannel(queue, async (ch, name) => (await ch.checkQueue(name)).messageCount, 0);
  }

  async get(queue: string, id: string): Promise<DeadLetter | undefined> {
    if (!LETTER_ID.test(id)) return undefined;
    return this.find(queue, id, async (h) => h.letter);
  }

  async retry(queue: string, id: string, options: RetryDeadLetterOptions = {}): Promise<boolean> {
    if (!LETTER_ID.test(id)) return false;
    const done = await this.find(queue, id, async (h, ch) => {
      const properties = newMessageProperties(h.letter.priority, { ...h.letter.headers });
      const body = options.body ?? h.letter.body;
      await this.host.send(queue, Buffer.from(body.buffer, body.byteOffset, body.byteLength), properties);
      ch.ack(h.message);
      return true;
    });
    return done === true;
  }

  async delete(queue: string, id: string): Promise<boolean> {
    if (!LETTER_ID.test(id)) return false;
    const done = await this.find(queue, id, async (h, ch) => {
      ch.ack(h.message);
      return true;
    });
    return done === true;
  }

  async purge(queue: string): Promise<number> {
    return this.withChannel(queue, async (ch, name) => (await ch.purgeQueue(name)).messageCount, 0);
  }

  /** AMQP 0-9-1 cannot list queues: callers ask for the queues they know of. */
  async queues(): Promise<undefined> {
    return undefined;
  }

  /** Scans for one letter and calls `act` with it (still held); undefined when not found. */
  private find<T>(
    queue: string,
    id: string,
    act: (h: Held, ch: Channel) => Promise<T>,
  ): Promise<T | undefined> {
    return this.scan<T | undefined>(queue, undefined, async (ch, next) => {
      for (let h = await next(); h; h = await next()) if (h.letter.id === id) return act(h, ch);
      return undefined;
    });
  }

  /** Runs `body` with a reader of the dead-letter queue's head (at most maxScan letters), then lets the rest go. */
  private scan<T>(
    queue: string,
    missing: T,
    body: (ch: Channel, next: () => Promise<Held | undefined>) => Promise<T>,
  ): Promise<T> {
    return this.withChannel(
      queue,
      async (ch, name) => {
        let taken = 0;
        const next = async (): Promise<Held | undefined> => {
          if (taken >= this.maxScan) return undefined;
          const message = await ch.get(name, { noAck: false });
          if (message === false) return undefined;
          taken++;
          return { message, letter: letterOf(queue, message) };
        };
        return body(ch, next);
      },
      missing,
    );
  }

  /**
   * A channel of its own for one operation, closed after it (which returns every letter taken and
   * not acked). A missing dead-letter queue (404) means no letters: `missing` is the answer.
   */
  private async withChannel<T>(
    queue: string,
    fn: (ch: Channel, name: string) => Promise<T>,
    missing: T,
  ): Promise<T> {
    assertLogicalName(queue, "queue name");
    const name = this.host.queueName(deadLetterQueueOf(queue));
    let ch: Channel | undefined;
    try {
      ch = await this.host.connection.channel(false, Date.now() + this.host.operationTimeoutMs);
      return await fn(ch, name);
    } catch (error) {
      if ((error as { code?: number }).code === 404) return missing;
      if (error instanceof FastAgenticError) throw error;
      throw new TransportError(`Could not read the dead letters of "${queue}": ${describeThrown(error)}`, {
        cause: error,
        retryable: true,
      });
    } finally {
      await ch?.close().catch(() => {});
    }
  }
}

function letterOf(queue: string, message: GetMessage): DeadLetter {
  const meta = readMeta(message as unknown as ConsumeMessage);
  const stamps = stampsOf(meta.headers);
  const timestamp = Number(message.properties.timestamp);
  return {
    id: idOf(message),
    queue,
    body: message.content,
    priority: meta.priority,
    headers: userHeadersOf(meta.headers, DEAD_LETTER_REASON_HEADER),
    reason: meta.headers[DEAD_LETTER_REASON_HEADER] ?? deathReason(message) ?? "",
    deliveries: stamps.deliveries,
    deadAt: stamps.deadAt ?? (Number.isFinite(timestamp) && timestamp > 0 ? timestamp * 1000 : undefined),
  };
}

/** The transport's messageId, or a digest for a letter the broker dead-lettered by itself. */
function idOf(message: GetMessage): string {
  const given = message.properties.messageId;
  if (typeof given === "string" && LETTER_ID.test(given)) return given;
  const hash = createHash("sha256").update(message.content);
  hash.update(JSON.stringify(message.properties.headers ?? {}));
  return `h${hash.digest("base64url").slice(0, 31)}`;
}

/** RabbitMQ's own reason (x-first-death-reason: rejected, expired, maxlen…), if it dead-lettered it. */
function deathReason(message: GetMessage): string | undefined {
  const reason = (message.properties.headers ?? {})["x-first-death-reason"];
  return typeof reason === "string" ? `dead-lettered by RabbitMQ (${reason})` : undefined;
}

function parseCursor(cursor: string | undefined): { position: number; id: string } | undefined {
  if (cursor === undefined) return undefined;
  const match = /^([0-9]{1,9})\.([A-Za-z0-9_-]{1,64})$/.exec(cursor);
  return match ? { position: Number(match[1]), id: match[2] as string } : undefined;
}

/** Stamps a copy on its way to the dead letters: an id to address it by, its deliveries, the time. */
export function stampDeadLetter(properties: Options.Publish, deliveries: number, id: string): void {
  properties.messageId = id;
  properties.headers ??= {};
  properties.headers[DEAD_LETTER_DELIVERIES_HEADER] = String(deliveries);
  properties.headers[DEAD_LETTER_AT_HEADER] = String(Date.now());
}
