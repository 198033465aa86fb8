/**
 * The record of finished tasks: a bounded memory, kept where the broker can keep it, of which
 * tasks already have an outcome, so that a delivery of a finished task (redelivered because its
 * ack was lost: a broker restarted uncleanly, a worker died between its outcome and its ack, a
 * delivery released from a worker declared dead that still finished) does not run its handler
 * again. Workers consult it only for deliveries whose delivery count says they ran before, and
 * write to it once per outcome (and once per retry of a task that has retries).
 *
 * Per transport (see README, "Delivery guarantees"):
 * - NATS: a JetStream KV bucket per namespace (`fa_done_<namespace>`, history 1, entries expire
 *   after `finishedTtlMs`, capped in bytes): shared by every process, durable like the work streams.
 * - memory: none needed: one process settles its own deliveries synchronously after the outcome,
 *   so a finished task is never redelivered (a redelivery follows only an attempt abandoned
 *   without an outcome: a worker stopped without draining, or fenced). LocalFinishedRecord below
 *   is the same record in a process, for tests.
 * - RabbitMQ: none (the broker has no store to keep it in): a redelivery always runs; duplicates
 *   are counted, not prevented.
 *
 * A record is best effort: a write lost with its broker (kill -9 before the write reached disk)
 * or one that fails leaves the task unprotected, and its redelivery runs, as it would without a
 * record. It never makes a task run less than once: it is written after the outcome was reported.
 */
import type { Bytes } from "./transport.js";

export interface FinishedEntry {
  /** The outcome event as reported (the codec's JSON of a TaskEvent), or null if only a retry is known. */
  outcome: Bytes | null;
  /** The highest attempt known to have ended with a retry (0: none). */
  retriedAttempt: number;
}

export interface FinishedRecord {
  /** How long a task's outcome is remembered, in milliseconds. */
  readonly ttlMs: number;
  /** What is known of a task: its recorded outcome, its last retried attempt; null when nothing. */
  lookup(taskId: string): Promise<FinishedEntry | null>;
  /**
   * Records a task's outcome, once: resolves false when an outcome was recorded already (then this
   * run came after it: the handler ran again although the task had finished).
   */
  recordOutcome(taskId: string, outcome: Bytes): Promise<boolean>;
  /** Records that attempt `attempt` of a task ended with a retry (its next delivery is no duplicate). */
  recordRetry(taskId: string, attempt: number): Promise<void>;
  /**
   * Forgets a task (its dead letter is retried under the same id: it must run again). Its next
   * outcome may then go unrecorded (a write-once publish finds the deletion marker): that task is
   * only unprotected, never kept from running.
   */
  forget(taskId: string): Promise<void>;
  /**
   * recordOutcome without waiting for the store's answer, where the store offers a cheaper write
   * (NATS: a plain publish the stream takes with the same write-once condition, instead of a
   * request per task). Workers use it when present: nothing tells them then that a run came
   * after another's outcome (`ranAfterRecorded` is not counted).
   */
  noteOutcome?(taskId: string, outcome: Bytes): void;
}

/**
 * A record kept in this process (tests; an application that runs a single process can hand it
 * to a transport wrapper): ids expire `ttlMs` after they were
 * recorded, and at most `maxEntries` are kept (the oldest are forgotten first).
 */
export class LocalFinishedRecord implements FinishedRecord {
  private readonly entries = new Map<string, { outcome: Bytes | null; retriedAttempt: number; at: number }>();

  constructor(
    readonly ttlMs: number,
    private readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  async lookup(taskId: string): Promise<FinishedEntry | null> {
    return this.known(taskId);
  }

  // Each write reads and writes in one synchronous step: two at once cannot both be first.
  async recordOutcome(taskId: string, outcome: Bytes): Promise<boolean> {
    const known = this.known(taskId);
    if (known?.outcome) return false;
    this.set(taskId, { outcome, retriedAttempt: known?.retriedAttempt ?? 0, at: this.now() });
    return true;
  }

  async recordRetry(taskId: string, attempt: number): Promise<void> {
    const known = this.known(taskId);
    if (known?.outcome) return;
    this.set(taskId, {
      outcome: null,
      retriedAttempt: Math.max(attempt, known?.retriedAttempt ?? 0),
      at: this.now(),
    });
  }

  async forget(taskId: string): Promise<void> {
    this.entries.delete(taskId);
  }

  get size(): number {
    return this.entries.size;
  }

  private known(taskId: string): FinishedEntry | null {
    const e = this.entries.get(taskId);
    if (e === undefined) return null;
    if (this.now() - e.at >= this.ttlMs) {
      this.entries.delete(taskId);
      return null;
    }
    return { outcome: e.outcome, retriedAttempt: e.retriedAttempt };
  }

  private set(taskId: string, entry: { outcome: Bytes | null; retriedAttempt: number; at: number }): void {
    this.entries.delete(taskId); // re-inserted last: the map's order is the order of recording
    this.entries.set(taskId, entry);
    const now = this.now();
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && now - e.at < this.ttlMs) break;
      this.entries.delete(id);
    }
  }
}
