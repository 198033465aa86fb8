/**
 * A de-duplication window kept in this process, for brokers without one of their own (RabbitMQ)
 * and for the in-memory transport: each key is remembered for `windowMs`, and at most
 * `maxEntries` keys are (the oldest are forgotten first).
 *
 * The map gives each key the absolute position of its latest record in a FIFO of (key, time),
 * which is forgotten from its oldest end. Each call costs O(1) amortised, whatever the window
 * holds: iterating the map itself from its start, after many deletions there, walks over every
 * deleted slot (measured: 20–60 µs per call once 100,000 keys had gone through it).
 */
export class DedupWindow {
  private readonly positions = new Map<string, number>();
  private keys: string[] = [];
  private times: number[] = [];
  /** Index in `keys` of the oldest record kept. */
  private head = 0;
  /** Absolute position of `keys[0]`. */
  private base = 0;

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Keys remembered. */
  get size(): number {
    return this.positions.size;
  }

  /**
   * Records `key`, unless it was recorded within the window: returns its record (for `forget`),
   * or undefined for a duplicate.
   */
  add(key: string): number | undefined {
    if (this.windowMs <= 0) return -1; // no window: nothing is remembered
    const now = this.now();
    const known = this.positions.get(key);
    if (known !== undefined && now - (this.times[known - this.base] as number) < this.windowMs)
      return undefined;
    const position = this.base + this.keys.length;
    this.keys.push(key);
    this.times.push(now);
    this.positions.set(key, position);
    this.evict(now);
    return position;
  }

  /** Forgets the record `add` returned (a send that failed may be sent again), unless a newer one replaced it. */
  forget(key: string, record: number): void {
    if (this.positions.get(key) === record) this.positions.delete(key);
  }

  private evict(now: number): void {
    const { keys, times, positions } = this;
    let head = this.head;
    while (head < keys.length) {
      const expired = now - (times[head] as number) >= this.windowMs;
      if (!expired && positions.size <= this.maxEntries) break;
      const oldest = keys[head] as string;
      if (positions.get(oldest) === this.base + head) positions.delete(oldest);
      head++;
    }
    if (head >= 1024 && head * 2 >= keys.length) {
      this.keys = keys.slice(head);
      this.times = times.slice(head);
      this.base += head;
      head = 0;
    }
    this.head = head;
  }
}
