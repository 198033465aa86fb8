/**
 * Time is injected: every timer in the library goes through a Clock, so tests drive heartbeats,
 * timeouts, back-off and restart windows with a SimulatedClock instead of sleeping.
 */
export interface TimerHandle {
  readonly __timer: true;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** Node's longest timer (2^31 − 1 ms); it runs a longer one after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

/** A wait longer than one timer can take: a chain of timers, the current one in `timer`. */
class LongTimer {
  timer!: ReturnType<typeof setTimeout>;
  constructor(fn: () => void, ms: number) {
    this.arm(fn, ms);
  }
  private arm(fn: () => void, left: number): void {
    this.timer =
      left > MAX_TIMER_MS
        ? unrefTimer(() => this.arm(fn, left - MAX_TIMER_MS), MAX_TIMER_MS)
        : unrefTimer(fn, left);
  }
}

function unrefTimer(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return t;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  // Options are bounded (src/limits.ts), but a long wait still waits as long as it says, never 1 ms.
  setTimeout: (fn, ms) =>
    (ms > MAX_TIMER_MS ? new LongTimer(fn, ms) : unrefTimer(fn, ms)) as unknown as TimerHandle,
  clearTimeout: (handle) => {
    if (handle === undefined) return;
    if (handle instanceof LongTimer) clearTimeout(handle.timer);
    else clearTimeout(handle as unknown as ReturnType<typeof setTimeout>);
  },
};

/** Repeats `fn` every `ms` on `clock` until the returned function is called. */
export function every(clock: Clock, ms: number, fn: () => void): () => void {
  let handle: TimerHandle | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    handle = clock.setTimeout(tick, ms);
    fn();
  };
  handle = clock.setTimeout(tick, ms);
  return () => {
    stopped = true;
    clock.clearTimeout(handle);
  };
}

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock that only moves when told to. `advance(ms)` runs every timer that falls due, in order,
 * letting promise callbacks settle between them, so code under test sees time pass as it would.
 */
export class SimulatedClock implements Clock {
  private current: number;
  private seq = 0;
  private timers = new Map<number, Pending>();

  constructor(start = 1_700_000_000_000) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { id, at: this.current + Math.max(0, ms), fn });
    return { __timer: true, id } as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle === undefined) return;
    this.timers.delete((handle as unknown as { id: number }).id);
  }

  /** Number of timers waiting to fire. */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in time order and settling promises in between. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    await flushPromises();
    for (;;) {
      const next = this.nextDue(target);
      if (!next) break;
      this.timers.delete(next.id);
      this.current = next.at;
      next.fn();
      await flushPromises();
    }
    this.current = target;
    await flushPromises();
  }

  private nextDue(limit: number): Pending | undefined {
    let best: Pending | undefined;
    for (const t of this.timers.values()) {
      if (t.at <= limit && (!best || t.at < best.at || (t.at === best.at && t.id < best.id))) best = t;
    }
    return best;
  }
}

/** Lets every queued promise callback and microtask run (a macrotask turn, twice). */
export async function flushPromises(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
