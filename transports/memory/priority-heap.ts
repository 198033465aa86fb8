/**
 * A binary min-heap ordered by (priority descending, sequence ascending): the highest priority
 * first, first in first out within one priority.
 */
export interface HeapItem {
  priority: number;
  seq: number;
}

export class PriorityHeap<T extends HeapItem> {
  private items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i] as T, items[parent] as T)) break;
      swap(items, i, parent);
      i = parent;
    }
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && before(items[l] as T, items[m] as T)) m = l;
        if (r < items.length && before(items[r] as T, items[m] as T)) m = r;
        if (m === i) break;
        swap(items, i, m);
        i = m;
      }
    }
    return top;
  }

  /** Every item, in no particular order (a copy). */
  toArray(): T[] {
    return [...this.items];
  }

  /** Removes the items `remove` picks (O(n): for rare operations such as dead-letter admin). */
  removeWhere(remove: (item: T) => boolean): T[] {
    const kept: T[] = [];
    const removed: T[] = [];
    for (const item of this.items) (remove(item) ? removed : kept).push(item);
    if (removed.length === 0) return removed;
    this.items = [];
    for (const item of kept) this.push(item);
    return removed;
  }

  /** Removes every item; returns them in no particular order. */
  drain(): T[] {
    const all = this.items;
    this.items = [];
    return all;
  }
}

/** True when `a` must be delivered before `b`. */
export function before(a: HeapItem, b: HeapItem): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.seq < b.seq;
}

function swap<T>(items: T[], i: number, j: number): void {
  const t = items[i] as T;
  items[i] = items[j] as T;
  items[j] = t;
}
