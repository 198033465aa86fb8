/**
 * Dead letters on the in-memory transport: a dead-letter queue is a queue like the others (its
 * heap), and a letter's id is its sequence number, given when it died (so ids follow the order
 * letters died in, and a cursor is the last id seen). Every operation is O(letters in the queue),
 * bounded by the transport's `maxDeadLetters`.
 */
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
import type { MemoryQueue, Message } from "./memory-consumer.js";

/** What the dead letters need from the in-memory transport. */
export interface MemoryDeadLetterHost {
  /** The queue of this name, if it was ever used. */
  existingQueue(name: string): MemoryQueue | undefined;
  queueNames(): Iterable<string>;
  /** Enqueues a new message (a new sequence number, no deliveries yet) on a work queue. */
  enqueueNew(queue: string, body: Uint8Array, priority: number, headers: Record<string, string>): void;
  assertOpen(): void;
}

export class MemoryDeadLetters implements DeadLetters {
  constructor(private readonly host: MemoryDeadLetterHost) {}

  async list(queue: string, options: ListDeadLettersOptions = {}): Promise<DeadLetterPage> {
    const limit = pageLimit(options.limit);
    const after = options.cursor === undefined ? 0 : (sequenceOf(options.cursor) ?? 0);
    const sorted = this.messages(queue)
      .filter((m) => m.seq > after)
      .sort((a, b) => a.seq - b.seq);
    const page = sorted.slice(0, limit);
    const last = page[page.length - 1];
    return {
      letters: page.map((m) => letterOf(queue, m)),
      next: sorted.length > limit && last ? String(last.seq) : undefined,
    };
  }

  async count(queue: string): Promise<number> {
    return this.dlq(queue)?.heap.size ?? 0;
  }

  async get(queue: string, id: string): Promise<DeadLetter | undefined> {
    const seq = sequenceOf(id);
    const found = seq === undefined ? undefined : this.messages(queue).find((m) => m.seq === seq);
    return found ? letterOf(queue, found) : undefined;
  }

  async retry(queue: string, id: string, options: RetryDeadLetterOptions = {}): Promise<boolean> {
    this.host.assertOpen();
    const [message] = this.take(queue, id);
    if (!message) return false;
    const headers = userHeadersOf(message.headers, DEAD_LETTER_REASON_HEADER);
    this.host.enqueueNew(queue, options.body ?? message.body, message.priority, headers);
    return true;
  }

  async delete(queue: string, id: string): Promise<boolean> {
    this.host.assertOpen();
    return this.take(queue, id).length > 0;
  }

  async purge(queue: string): Promise<number> {
    this.host.assertOpen();
    return this.dlq(queue)?.heap.removeWhere(() => true).length ?? 0;
  }

  async queues(): Promise<string[]> {
    const names: string[] = [];
    for (const name of this.host.queueNames()) {
      const work = workQueueOfDeadLetters(name);
      if (work === undefined) continue;
      const q = this.host.existingQueue(name);
      if (q && q.heap.size > 0) names.push(work);
    }
    return names.sort();
  }

  private dlq(queue: string): MemoryQueue | undefined {
    assertLogicalName(queue, "queue name");
    return this.host.existingQueue(deadLetterQueueOf(queue));
  }

  private messages(queue: string): Message[] {
    return this.dlq(queue)?.heap.toArray() ?? [];
  }

  private take(queue: string, id: string): Message[] {
    const seq = sequenceOf(id);
    if (seq === undefined) return [];
    return this.dlq(queue)?.heap.removeWhere((m) => m.seq === seq) ?? [];
  }
}

function letterOf(queue: string, m: Message): DeadLetter {
  return {
    id: String(m.seq),
    queue,
    body: m.body,
    priority: m.priority,
    headers: userHeadersOf(m.headers, DEAD_LETTER_REASON_HEADER),
    reason: m.headers[DEAD_LETTER_REASON_HEADER] ?? "",
    ...stampsOf(m.headers),
  };
}
