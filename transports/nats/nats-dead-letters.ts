/**
 * Dead letters on NATS JetStream: a work queue's dead letters are a stream of their own, so a
 * letter's id is its stream sequence, read with STREAM.MSG.GET (`next_by_subj` for pages: one
 * request per letter, no consumer), removed with STREAM.MSG.DELETE, all of them with a purge.
 * Retry publishes a copy to the work queue with `Nats-Msg-Id` `dl-retry-<stream>-<seq>` (a retry
 * repeated within the duplicate window is queued once), then deletes the letter. Reading never
 * creates a stream.
 */
import { JetStreamApiError, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { describeThrown, FastAgenticError, TransportError } from "../../src/errors.js";
import {
  type DeadLetter,
  type DeadLetterPage,
  type DeadLetters,
  type ListDeadLettersOptions,
  pageLimit,
  type RetryDeadLetterOptions,
  sequenceOf,
  stampsOf,
  userHeadersOf,
  workQueueOfDeadLetters,
} from "../dead-letters.js";
import { assertLogicalName, DEAD_LETTER_REASON_HEADER, deadLetterQueueOf } from "../transport.js";
import { readHeaders } from "./nats-headers.js";
import type { NatsNames } from "./nats-names.js";

/** What the dead letters need from the NATS transport. */
export interface NatsDeadLetterHost {
  readonly names: NatsNames;
  /** The JetStream manager of the live connection (throws when there is none). */
  jsm(): JetStreamManager;
  /** Enqueues on a work queue like Transport.enqueue. */
  enqueue(
    queue: string,
    body: Uint8Array,
    options: { priority: number; headers: Record<string, string>; dedupId: string },
  ): Promise<void>;
}

const NO_MESSAGE = new Set([10037, 10043]);
const NO_STREAM = 10059;

export class NatsDeadLetters implements DeadLetters {
  constructor(private readonly host: NatsDeadLetterHost) {}

  async list(queue: string, options: ListDeadLettersOptions = {}): Promise<DeadLetterPage> {
    const limit = pageLimit(options.limit);
    const stream = this.streamOf(queue);
    let seq = (sequenceOf(options.cursor) ?? 0) + 1;
    const letters: DeadLetter[] = [];
    for (;;) {
      const m = await this.read(stream, { seq, next_by_subj: this.subjects(queue) });
      if (!m) return { letters, next: undefined };
      if (letters.length === limit) return { letters, next: String(seq - 1) };
      letters.push(this.letterOf(queue, m));
      seq = m.seq + 1;
    }
  }

  async count(queue: string): Promise<number> {
    const stream = this.streamOf(queue);
    return this.call(`count the dead letters of "${queue}"`, async () => {
      try {
        return (await this.host.jsm().streams.info(stream)).state.messages;
      } catch (error) {
        if (isCode(error, NO_STREAM)) return 0;
        throw error;
      }
    });
  }

  async get(queue: string, id: string): Promise<DeadLetter | undefined> {
    const stream = this.streamOf(queue);
    const seq = sequenceOf(id);
    if (seq === undefined) return undefined;
    const m = await this.read(stream, { seq });
    return m ? this.letterOf(queue, m) : undefined;
  }

  async retry(queue: string, id: string, options: RetryDeadLetterOptions = {}): Promise<boolean> {
    const stream = this.streamOf(queue);
    const seq = sequenceOf(id);
    if (seq === undefined) return false;
    const m = await this.read(stream, { seq });
    if (!m) return false;
    const letter = this.letterOf(queue, m);
    await this.host.enqueue(queue, options.body ?? letter.body, {
      priority: letter.priority,
      headers: { ...letter.headers },
      dedupId: `dl-retry-${stream}-${seq}`,
    });
    await this.remove(stream, seq);
    return true;
  }

  async delete(queue: string, id: string): Promise<boolean> {
    const stream = this.streamOf(queue);
    const seq = sequenceOf(id);
    return seq === undefined ? false : this.remove(stream, seq);
  }

  async purge(queue: string): Promise<number> {
    const stream = this.streamOf(queue);
    return this.call(`purge the dead letters of "${queue}"`, async () => {
      try {
        return (await this.host.jsm().streams.purge(stream)).purged;
      } catch (error) {
        if (isCode(error, NO_STREAM)) return 0;
        throw error;
      }
    });
  }

  async queues(): Promise<string[]> {
    const names = this.host.names;
    return this.call("list the queues with dead letters", async () => {
      const found: string[] = [];
      for await (const info of this.host.jsm().streams.list(names.workWildcard)) {
        if (info.state.messages === 0) continue;
        const subject = info.config.subjects?.[0];
        if (!subject?.startsWith(names.workPrefix)) continue;
        const logical = subject.slice(names.workPrefix.length).replace(/\.p[0-9]+$/, "");
        const work = workQueueOfDeadLetters(logical);
        if (work !== undefined && names.streamName(logical) === info.config.name) found.push(work);
        if (found.length >= 10_000) break;
      }
      return found.sort();
    });
  }

  private streamOf(queue: string): string {
    assertLogicalName(queue, "queue name");
    return this.host.names.streamName(deadLetterQueueOf(queue));
  }

  /** Matches every priority level's subject of the queue's dead letters. */
  private subjects(queue: string): string {
    return `${this.host.names.workSubject(deadLetterQueueOf(queue), 0).replace(/\.p0$/, "")}.>`;
  }

  private letterOf(queue: string, m: StoredMsg): DeadLetter {
    const level = Number(/\.p([0-9]+)$/.exec(m.subject)?.[1] ?? 0);
    const { priority, headers } = readHeaders(m.header, level);
    const stamps = stampsOf(headers);
    return {
      id: String(m.seq),
      queue,
      body: m.data,
      priority,
      headers: userHeadersOf(headers, DEAD_LETTER_REASON_HEADER),
      reason: headers[DEAD_LETTER_REASON_HEADER] ?? "",
      deliveries: stamps.deliveries,
      deadAt: stamps.deadAt ?? m.time.getTime(),
    };
  }

  /** A stored message, or undefined when there is none (or no stream). */
  private read(
    stream: string,
    query: { seq: number; next_by_subj?: string },
  ): Promise<StoredMsg | undefined> {
    return this.call(`read dead letters of stream ${stream}`, async () => {
      try {
        // next_by_subj is part of STREAM.MSG.GET (server 2.9+); nats.js types it for direct gets only.
        return (await this.host.jsm().streams.getMessage(stream, query as { seq: number })) ?? undefined;
      } catch (error) {
        if (isCode(error, NO_STREAM) || isCode(error, NO_MESSAGE)) return undefined;
        throw error;
      }
    });
  }

  private remove(stream: string, seq: number): Promise<boolean> {
    return this.call(`delete dead letter ${seq} of stream ${stream}`, async () => {
      try {
        return await this.host.jsm().streams.deleteMessage(stream, seq, false);
      } catch (error) {
        if (isCode(error, NO_STREAM) || isCode(error, NO_MESSAGE)) return false;
        throw error;
      }
    });
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof FastAgenticError || !(error instanceof Error)) throw error;
      throw new TransportError(`Could not ${what}: ${describeThrown(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }
}

function isCode(error: unknown, code: number | Set<number>): boolean {
  if (!(error instanceof JetStreamApiError)) return false;
  return typeof code === "number" ? error.code === code : code.has(error.code);
}
