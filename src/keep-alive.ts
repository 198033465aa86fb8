/**
 * Keep-alive: a started Coordinator, WorkerPool or Worker keeps its process alive until its
 * stop(), as a server does. The library's own timers are unref'd (src/clock.ts), so a back-off,
 * a delayed retry or a heartbeat never holds a process by itself, and a script that awaits a
 * task in back-off would otherwise exit in the middle (Node: "unsettled top-level await", code 13).
 * Instead, one ref'd timer is held while anything started is running; stop() releases it, and
 * the process exits once nothing else holds it. `keepAlive: false` opts a component out.
 */

/** Longest delay setInterval takes without warning (about 24.8 days). */
const FOREVER_MS = 2 ** 31 - 1;

let holders = 0;
let timer: NodeJS.Timeout | undefined;

/** Holds the process open; the returned function releases this hold (once; later calls do nothing). */
export function holdProcess(): () => void {
  holders++;
  timer ??= setInterval(() => {}, FOREVER_MS);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    holders--;
    if (holders === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

/** Holds taken and not yet released (for tests). */
export function processHolds(): number {
  return holders;
}

/**
 * One component's hold: `take()` when it starts (again: no second hold), `release()` when it
 * stopped. A no-op when the component was created with `keepAlive: false`.
 */
export class KeepAlive {
  private releaseHold?: () => void;

  constructor(private readonly enabled = true) {}

  take(): void {
    if (this.enabled && this.releaseHold === undefined) this.releaseHold = holdProcess();
  }

  release(): void {
    this.releaseHold?.();
    this.releaseHold = undefined;
  }
}
