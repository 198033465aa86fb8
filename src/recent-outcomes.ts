/**
 * The outcome events this process published lately, kept so they can be sent again: task events
 * are fan-out, at most once, and a client whose connection to the broker was down when one was
 * published never sees it. After a reconnect (the worker's or the client's), the outcomes are
 * sent again; a task's first outcome wins, so a repeat changes nothing.
 *
 * A ring of parallel arrays: adding is O(1) and allocates nothing on the hot path; the lookups
 * (after a reconnect, rare) scan it. Workers hold few tasks while cut off from the broker (they
 * cannot ack), so the outcomes at risk are the last few thousand at most.
 */
export class RecentOutcomes {
  private readonly queues: string[];
  private readonly taskIds: string[];
  private readonly jsons: string[];
  private readonly ats: number[];
  private next = 0;
  private count = 0;

  constructor(
    private readonly now: () => number,
    private readonly capacity = 8192,
    private readonly maxAgeMs = 10 * 60_000,
  ) {
    this.queues = new Array<string>(capacity);
    this.taskIds = new Array<string>(capacity);
    this.jsons = new Array<string>(capacity);
    this.ats = new Array<number>(capacity).fill(0);
  }

  add(queue: string, taskId: string, json: string): void {
    const i = this.next;
    this.queues[i] = queue;
    this.taskIds[i] = taskId;
    this.jsons[i] = json;
    this.ats[i] = this.now();
    this.next = (i + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The outcomes known here for these tasks of `queue`. */
  find(queue: string, taskIds: readonly string[]): string[] {
    const wanted = new Set(taskIds);
    return this.live(this.maxAgeMs)
      .filter((i) => this.queues[i] === queue && wanted.has(this.taskIds[i] as string))
      .map((i) => this.jsons[i] as string);
  }

  /** Every outcome published in the last `windowMs`, by queue. */
  since(windowMs: number): Map<string, string[]> {
    const byQueue = new Map<string, string[]>();
    for (const i of this.live(Math.min(windowMs, this.maxAgeMs))) {
      const queue = this.queues[i] as string;
      const list = byQueue.get(queue) ?? [];
      list.push(this.jsons[i] as string);
      byQueue.set(queue, list);
    }
    return byQueue;
  }

  get size(): number {
    return this.live(this.maxAgeMs).length;
  }

  /** Slots younger than windowMs, oldest first. */
  private live(windowMs: number): number[] {
    const from = this.now() - windowMs;
    const out: number[] = [];
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let k = 0; k < this.count; k++) {
      const i = (start + k) % this.capacity;
      if ((this.ats[i] as number) >= from) out.push(i);
    }
    return out;
  }
}
