/**
 * Bookkeeping RabbitMQ does not do for us, kept per transport instance (per process):
 * the de-duplication window of `dedupId`s, and the count of delayed messages not due yet.
 */

interface Seen {
  at: number;
  /** The publish under way: a duplicate sent meanwhile waits for (and shares) its outcome. */
  pending?: Promise<void>;
}

/** RabbitMQ has no de-duplication: a bounded, time-limited window of the ids sent from here. */
export class DedupWindow {
  private readonly seen = new Map<string, Seen>();
  /** When expired entries were last dropped: at most once a second, or when over the size limit. */
  private evictedAt = 0;

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries: number,
  ) {}

  /** Runs `send` unless `key` was sent within the window; a failed send is forgotten (retryable). */
  run(key: string, send: () => Promise<void>): Promise<void> {
    if (this.windowMs <= 0) return send();
    const now = Date.now();
    const previous = this.seen.get(key);
    if (previous) {
      if (now - previous.at < this.windowMs) return previous.pending ?? Promise.resolve();
      this.seen.delete(key); // expired: sent again, and moved to the end of the window
    }
    const entry: Seen = { at: now };
    entry.pending = send().then(
      () => {
        entry.pending = undefined;
      },
      (error: unknown) => {
        if (this.seen.get(key) === entry) this.seen.delete(key);
        throw error;
      },
    );
    this.seen.set(key, entry);
    if (this.seen.size > this.maxEntries || now - this.evictedAt >= 1000) this.evict(now);
    return entry.pending;
  }

  private evict(now: number): void {
    this.evictedAt = now;
    // Insertion order is time order: the oldest entries are first. An expired entry left a
    // little longer is harmless: run() treats it as absent.
    for (const [key, entry] of this.seen) {
      if (this.seen.size <= this.maxEntries && now - entry.at < this.windowMs) break;
      if (entry.pending) continue;
      this.seen.delete(key);
    }
  }
}

/** Delayed messages this process sent, per queue, until they are due (for depth()). */
export class DelayedCounts {
  private readonly due = new Map<string, { times: number[]; pruneAt: number }>();

  add(queue: string, dueAt: number): void {
    const entry = this.due.get(queue);
    if (!entry) {
      this.due.set(queue, { times: [dueAt], pruneAt: 1024 });
      return;
    }
    entry.times.push(dueAt);
    if (entry.times.length >= entry.pruneAt) {
      this.count(queue);
      entry.pruneAt = Math.max(1024, entry.times.length * 2);
    }
  }

  count(queue: string): number {
    const entry = this.due.get(queue);
    if (!entry) return 0;
    const now = Date.now();
    entry.times = entry.times.filter((at) => at > now);
    if (entry.times.length === 0) this.due.delete(queue);
    return entry.times.length;
  }
}
