/**
 * Bookkeeping RabbitMQ does not do for us, kept per transport instance (per process):
 * the de-duplication window of `dedupId`s, and the count of delayed messages not due yet.
 */
import { DedupWindow } from "../dedup-window.js";

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * RabbitMQ has no de-duplication: a window of the dedupIds sent from here. A duplicate sent while
 * the first is being published waits for (and shares) its outcome; a failed send is forgotten
 * (it may be sent again).
 */
export class SendOnce {
  private readonly window: DedupWindow;
  private readonly sending = new Map<string, Promise<void>>();

  constructor(
    private readonly windowMs: number,
    maxEntries: number,
    now: () => number = Date.now,
  ) {
    this.window = new DedupWindow(windowMs, maxEntries, now);
  }

  /** Runs `send` unless `key` was sent within the window. */
  run(key: string, send: () => Promise<void>): Promise<void> {
    if (this.windowMs <= 0) return send();
    // A send under way is shared even if the window forgot its key meanwhile (full, or slower than it).
    const underWay = this.sending.get(key);
    if (underWay !== undefined) return underWay;
    const record = this.window.add(key);
    if (record === undefined) return RESOLVED;
    const sent = send();
    this.sending.set(key, sent);
    sent.then(
      () => {
        if (this.sending.get(key) === sent) this.sending.delete(key);
      },
      () => {
        if (this.sending.get(key) === sent) this.sending.delete(key);
        this.window.forget(key, record);
      },
    );
    return sent;
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
