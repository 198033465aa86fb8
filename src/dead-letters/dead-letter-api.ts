/**
 * `coordinator.deadLetters`: the dead letters of one logical queue (a coordinator's queue name),
 * over the transport's dead-letters capability (transports/dead-letters.ts), whatever the layout
 * of its dead-letter queues. A letter is shown decoded (task id, type, data, error, attempts);
 * retrying one re-enqueues the task with its original id and its attempts reset, and this
 * process tracks it again (waitFor, getTask, the dashboard) until its new outcome.
 */
import type { DeadLetter, DeadLetters } from "../../transports/dead-letters.js";
import { pageLimit } from "../../transports/dead-letters.js";
import { logicalNameProblem, type Transport } from "../../transports/transport.js";
import { decodeTask, encode, type TaskEnvelope } from "../codec.js";
import { ConfigError, UnknownDeadLetterError } from "../errors.js";
import { assertQueueName, assertTaskType, isWorkQueueOf } from "../names.js";
import type { Task } from "../types.js";
import {
  type DeadLetterRef,
  decodeCursor,
  encodeCursor,
  formatDeadLetterId,
  parseDeadLetterId,
} from "./dead-letter-ids.js";

/** A dead letter as people see it: the task it held, decoded where it can be. */
export interface DeadLetterInfo {
  /** Addresses the letter (retry, delete); changes when it is retried and dies again. */
  id: string;
  /** The logical queue (the coordinator's queue name). */
  queue: string;
  /** The work queue it died in (one per task type and tag set). */
  workQueue: string;
  /** False when the message was not a task this version can read (then only `body` is shown). */
  decoded: boolean;
  taskId?: string;
  type?: string;
  tags?: string[];
  data?: unknown;
  metadata?: Record<string, unknown>;
  priority: number;
  retries?: number;
  timeoutMs?: number;
  enqueuedAt?: number;
  /** Why it died: the task's last error, or the transport's reason. */
  error: string;
  /** Attempts (deliveries) it had, where the broker tells. */
  attempts?: number;
  deadAt?: number;
  headers: Record<string, string>;
  /** The undecodable message as text (cut to 2 KiB); only when `decoded` is false. */
  body?: string;
}

export interface DeadLetterListOptions {
  /** Only letters of this task type. */
  type?: string;
  /** Letters per page, 1..500 (default 50). */
  limit?: number;
  /** The `next` of the previous page. */
  cursor?: string;
}

export interface DeadLetterList {
  letters: DeadLetterInfo[];
  /** Pass as `cursor` for the next page; undefined at the end. */
  next?: string;
}

export interface DeadLetterCounts {
  total: number;
  /** By work queue (one per task type and tag set), only those with letters. */
  byQueue: Record<string, number>;
}

export interface DeadLetterApiOptions {
  transport: Transport;
  /** The logical queue (a coordinator's or TaskQueue's name). */
  queue: string;
  /** Work queues this process knows of (its workers', its submits'): listed even where the broker cannot list queues. */
  knownQueues(): Iterable<string>;
  /**
   * Tracks a task about to be retried again (the coordinator's TaskQueue), so its new outcome can
   * be awaited; called before the re-enqueue (whose outcome may come back at once), and what it
   * returns is called if the re-enqueue fails.
   */
  onRetried?(task: Task): () => void;
  now?(): number;
}

/** Letters looked at per call at most when filtering by type (pages may come back short). */
const SCAN_PAGES = 10;
/** retryAll / purge by type act on at most this many letters per call. */
export const MAX_BULK = 10_000;

export class DeadLetterApi {
  readonly queue: string;

  constructor(private readonly options: DeadLetterApiOptions) {
    this.queue = options.queue;
    assertQueueName(options.queue);
  }

  /** A page of dead letters, oldest first per work queue, the work queues in name order. */
  async list(options: DeadLetterListOptions = {}): Promise<DeadLetterList> {
    const limit = pageLimit(options.limit);
    if (options.type !== undefined) assertTaskType(options.type);
    const store = this.store();
    const queues = await this.workQueues();
    let position = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    const letters: DeadLetterInfo[] = [];
    let scanned = 0;
    for (const queue of queues) {
      if (position && queue < position.queue) continue;
      let inner = position && queue === position.queue ? position.inner : undefined;
      position = undefined;
      for (;;) {
        const page = await store.list(queue, {
          limit: limit - letters.length,
          ...(inner ? { cursor: inner } : {}),
        });
        scanned++;
        for (const letter of page.letters) {
          const info = this.describe(letter);
          if (options.type === undefined || info.type === options.type) letters.push(info);
        }
        inner = page.next;
        if (inner === undefined) break;
        if (letters.length >= limit || scanned >= SCAN_PAGES)
          return { letters, next: encodeCursor(queue, inner) };
      }
      if (letters.length >= limit || scanned >= SCAN_PAGES) {
        const after = queues[queues.indexOf(queue) + 1];
        return after === undefined ? { letters } : { letters, next: encodeCursor(after, undefined) };
      }
    }
    return { letters };
  }

  /** How many dead letters each work queue of this queue holds. */
  async count(): Promise<DeadLetterCounts> {
    const store = this.store();
    const byQueue: Record<string, number> = {};
    let total = 0;
    for (const queue of await this.workQueues()) {
      const n = await store.count(queue);
      if (n > 0) byQueue[queue] = n;
      total += n;
    }
    return { total, byQueue };
  }

  /** One letter by the id a list gave; undefined when it is gone. */
  async get(id: string): Promise<DeadLetterInfo | undefined> {
    const ref = this.ref(id);
    if (!ref) return undefined;
    const letter = await this.store().get(ref.queue, ref.letter);
    return letter ? this.describe(letter) : undefined;
  }

  /**
   * Puts the task back on its work queue with its original id and its attempts reset; its events
   * go to every client of the queue (not only the one that submitted it). Throws
   * UnknownDeadLetterError when the letter is gone. Resolves with the task id (undefined for a
   * message that is not a task, sent back as it was).
   */
  async retry(id: string): Promise<{ taskId?: string }> {
    const ref = this.ref(id);
    if (!ref) throw new UnknownDeadLetterError(id);
    const store = this.store();
    const letter = await store.get(ref.queue, ref.letter);
    if (!letter) throw new UnknownDeadLetterError(id);
    const envelope = decodeOrUndefined(letter.body);
    let body = letter.body;
    if (envelope) {
      // No reply address: the client that submitted it may be gone; the queue's subject reaches all.
      const { replyTo: _gone, ...rest } = envelope;
      body = encode(rest, this.options.transport.maxPayloadBytes, "task data");
    }
    const undo = envelope
      ? this.options.onRetried?.(taskOf(envelope, this.options.now?.() ?? Date.now()))
      : undefined;
    let retried = false;
    try {
      // Recorded as finished (transports/finished-record.ts)? Then a worker would not run it again.
      if (envelope) await this.options.transport.finishedRecord?.()?.forget(envelope.id);
      retried = await store.retry(ref.queue, ref.letter, { body });
    } finally {
      if (!retried) undo?.();
    }
    if (!retried) throw new UnknownDeadLetterError(id);
    return envelope ? { taskId: envelope.id } : {};
  }

  /** Retries every letter (of one type), at most MAX_BULK per call; resolves with how many. */
  async retryAll(options: { type?: string } = {}): Promise<{ retried: number }> {
    let retried = 0;
    for (const letter of await this.collect(options.type)) {
      try {
        await this.retry(letter.id);
        retried++;
      } catch (error) {
        if (!(error instanceof UnknownDeadLetterError)) throw error; // gone meanwhile: fine
      }
    }
    return { retried };
  }

  /** Removes one letter; throws UnknownDeadLetterError when it is gone. */
  async delete(id: string): Promise<void> {
    const ref = this.ref(id);
    if (!ref || !(await this.store().delete(ref.queue, ref.letter))) throw new UnknownDeadLetterError(id);
  }

  /** Removes every letter (of one type: at most MAX_BULK per call); resolves with how many. */
  async purge(options: { type?: string } = {}): Promise<{ purged: number }> {
    const store = this.store();
    let purged = 0;
    if (options.type === undefined) {
      for (const queue of await this.workQueues()) purged += await store.purge(queue);
      return { purged };
    }
    for (const letter of await this.collect(options.type)) {
      const ref = this.ref(letter.id);
      if (ref && (await store.delete(ref.queue, ref.letter))) purged++;
    }
    return { purged };
  }

  /** Every work queue of this logical queue that may hold letters, in name order. */
  async workQueues(): Promise<string[]> {
    const names = new Set<string>();
    for (const q of this.options.knownQueues()) if (this.owns(q)) names.add(q);
    for (const q of (await this.store().queues()) ?? []) if (this.owns(q)) names.add(q);
    return [...names].sort();
  }

  private async collect(type: string | undefined): Promise<DeadLetterInfo[]> {
    const out: DeadLetterInfo[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.list({ limit: 500, ...(type ? { type } : {}), ...(cursor ? { cursor } : {}) });
      out.push(...page.letters);
      cursor = page.next;
    } while (cursor !== undefined && out.length < MAX_BULK);
    return out.slice(0, MAX_BULK);
  }

  private owns(workQueue: string): boolean {
    // Its lanes, and the per-type queues of layout 1 an upgrade may have left letters in.
    return isWorkQueueOf(this.queue, workQueue) && logicalNameProblem(workQueue) === undefined;
  }

  private ref(id: string): DeadLetterRef | undefined {
    const ref = parseDeadLetterId(id);
    return ref && this.owns(ref.queue) ? ref : undefined;
  }

  private store(): DeadLetters {
    const store = this.options.transport.deadLetters?.();
    if (!store) {
      throw new ConfigError(
        `The ${this.options.transport.kind} transport offers no dead-letters API (Transport.deadLetters()); ` +
          "read its dead-letter queues with consume() instead, or use a memory://, nats:// or amqp:// transport.",
      );
    }
    return store;
  }

  private describe(letter: DeadLetter): DeadLetterInfo {
    const base = {
      id: formatDeadLetterId({ queue: letter.queue, letter: letter.id }),
      queue: this.queue,
      workQueue: letter.queue,
      priority: letter.priority,
      error: letter.reason,
      headers: { ...letter.headers },
      ...(letter.deliveries === undefined ? {} : { attempts: letter.deliveries }),
      ...(letter.deadAt === undefined ? {} : { deadAt: letter.deadAt }),
    };
    const envelope = decodeOrUndefined(letter.body);
    if (!envelope) {
      const text = Buffer.from(letter.body).toString("utf8");
      return { ...base, decoded: false, body: text.length > 2048 ? `${text.slice(0, 2048)}…` : text };
    }
    return {
      ...base,
      decoded: true,
      taskId: envelope.id,
      type: envelope.type,
      tags: envelope.tags,
      data: envelope.data,
      metadata: envelope.metadata,
      priority: envelope.priority,
      retries: envelope.retries,
      timeoutMs: envelope.timeoutMs,
      enqueuedAt: envelope.enqueuedAt,
    };
  }
}

function decodeOrUndefined(body: Uint8Array): TaskEnvelope | undefined {
  try {
    return decodeTask(body);
  } catch {
    return undefined;
  }
}

function taskOf(e: TaskEnvelope, now: number): Task {
  return {
    id: e.id,
    type: e.type,
    data: e.data,
    priority: e.priority as Task["priority"],
    status: "pending",
    createdAt: now,
    timeoutMs: e.timeoutMs,
    retries: e.retries,
    retryCount: 0,
    tags: [...e.tags],
    metadata: e.metadata,
  };
}
