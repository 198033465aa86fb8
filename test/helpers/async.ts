/**
 * Waiting on conditions, never on time: every helper resolves when the awaited thing happens
 * and fails after a generous bound (a hang guard, not a timing assertion).
 */
export const HANG_GUARD_MS = 20_000;

/** Resolves with the value passed to `push` the `n`-th time; rejects after the hang guard. */
export class Collector<T> {
  readonly items: T[] = [];
  private waiters: Array<{ n: number; resolve: (items: T[]) => void }> = [];

  push = (item: T): void => {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (this.items.length >= w.n) {
        w.resolve(this.items.slice(0, w.n));
        return false;
      }
      return true;
    });
  };

  /** Resolves once at least `n` items arrived. */
  waitFor(n: number, what = `${n} item(s)`, guardMs = HANG_GUARD_MS): Promise<T[]> {
    if (this.items.length >= n) return Promise.resolve(this.items.slice(0, n));
    return new Promise<T[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`hang guard: waited for ${what}, got ${this.items.length}`)),
        guardMs,
      );
      this.waiters.push({
        n,
        resolve: (items) => {
          clearTimeout(timer);
          resolve(items);
        },
      });
    });
  }
}

export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
