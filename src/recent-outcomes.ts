/**
 * The outcome events this process published lately, kept so they can be sent again: task events
 * are fan-out, at most once, and a client whose connection to the broker was down when one was
 * published never sees it. After a reconnect (the worker's or the client's), the outcomes are
 * sent again; a task's first outcome wins, so a repeat changes nothing.
 */
export class RecentOutcomes {
  private readonly entries = new Map<string, { queue: string; json: string; at: number }>();

  constructor(
    private readonly now: () => number,
    private readonly maxEntries = 20_000,
    private readonly maxAgeMs = 10 * 60_000,
  ) {}

  add(queue: string, taskId: string, json: string): void {
    this.entries.delete(taskId);
    this.entries.set(taskId, { queue, json, at: this.now() });
    this.prune();
  }

  /** The outcomes known here for these tasks of `queue`. */
  find(queue: string, taskIds: readonly string[]): string[] {
    const found: string[] = [];
    for (const id of taskIds) {
      const e = this.entries.get(id);
      if (e && e.queue === queue) found.push(e.json);
    }
    return found;
  }

  /** Every outcome published in the last `windowMs`, by queue. */
  since(windowMs: number): Map<string, string[]> {
    const from = this.now() - windowMs;
    const byQueue = new Map<string, string[]>();
    for (const e of this.entries.values()) {
      if (e.at < from) continue;
      const list = byQueue.get(e.queue) ?? [];
      list.push(e.json);
      byQueue.set(e.queue, list);
    }
    return byQueue;
  }

  get size(): number {
    return this.entries.size;
  }

  private prune(): void {
    const oldest = this.now() - this.maxAgeMs;
    for (const [id, e] of this.entries) {
      if (this.entries.size > this.maxEntries || e.at < oldest) this.entries.delete(id);
      else break;
    }
  }
}
