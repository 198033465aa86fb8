/**
 * Task records at rest, moved from status to status by the task machine's compiled transition
 * table (actors/task.machine.ts), and the waiters that `waitFor` hands out. No polling: a waiter
 * is resolved by the event that makes its task terminal.
 */
import { nextTaskState, type TaskEventType, type TaskState } from "../actors/task.machine.js";
import type { Clock, TimerHandle } from "./clock.js";
import type { TaskEvent } from "./codec.js";
import { StateError, UnknownTaskError, WaitTimeoutError } from "./errors.js";
import { checked, durationIn } from "./limits.js";
import { isTerminal, type Task, type TaskResult, type TaskStatus, type WaitOptions } from "./types.js";

interface TaskRecord extends Task {
  /** Which execution produced the outcome (worker and attempt), to tell duplicates apart. */
  runWorker?: string;
  runAttempt?: number;
}

interface Waiter {
  resolve(result: TaskResult): void;
  reject(error: Error): void;
  timer?: TimerHandle;
  cleanup?: () => void;
}

export interface TaskCounters {
  submitted: number;
  pending: number;
  queued: number;
  running: number;
  completed: number;
  failed: number;
  cancelled: number;
  timeout: number;
  /** Attempts that failed or timed out and were retried. */
  retried: number;
  /** Outcomes reported for a task that already had one (a second run after a redelivery). */
  duplicates: number;
  /**
   * Runs started (their "started" events) of a task that was already running elsewhere, or had
   * finished: its delivery came again (a lost ack, a worker that died or was declared dead).
   */
  reruns: number;
}

const WAIT_MS = durationIn(0);

export class TaskStore {
  private readonly records = new Map<string, TaskRecord>();
  /** The records not yet terminal, oldest first: open() must not walk the finished ones (100,000 by default). */
  private readonly openRecords = new Map<string, TaskRecord>();
  /** One waiter per task as a rule, a list when several wait for the same task. */
  private readonly waiters = new Map<string, Waiter | Waiter[]>();
  private readonly finished: string[] = [];
  private finishedHead = 0;
  private readonly terminalListeners = new Set<(task: Task) => void>();
  readonly counters: TaskCounters = {
    submitted: 0,
    pending: 0,
    queued: 0,
    running: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
    timeout: 0,
    retried: 0,
    duplicates: 0,
    reruns: 0,
  };

  constructor(
    private readonly clock: Clock,
    private readonly maxFinished: number,
  ) {}

  has(id: string): boolean {
    return this.records.has(id);
  }

  /** Adds a new task in `pending`. */
  add(task: Task): void {
    this.records.set(task.id, task);
    if (!isTerminal(task.status)) this.openRecords.set(task.id, task);
    this.counters.submitted++;
    this.counters.pending++;
  }

  /** Adds a new task and moves it at once (ENQUEUE: pending → queued), without looking it up. */
  addAndMove(task: Task, event: TaskEventType): void {
    this.add(task);
    this.move(task, event);
  }

  /**
   * Tracks a task again from `queued` (a dead letter re-enqueued by hand: a new life, same id).
   * A finished record of it is replaced (its outcome stays counted); an open one is left as it is.
   * Returns what undoes it (the re-enqueue failed): the old record back, or none.
   */
  reopen(task: Task): () => void {
    const r = this.records.get(task.id);
    if (r && !isTerminal(r.status)) return () => {};
    if (r) this.records.delete(task.id);
    const fresh: Task = { ...task, status: "pending" };
    this.addAndMove(fresh, "ENQUEUE");
    return () => {
      if (this.records.get(task.id) !== fresh || fresh.status !== "queued") return;
      this.remove(task.id);
      if (r) this.records.set(task.id, r);
    };
  }

  /** Forgets a task that was never enqueued (its publish failed); whoever waited for it is told so. */
  remove(id: string): void {
    const r = this.records.get(id);
    if (!r) return;
    this.records.delete(id);
    if (this.openRecords.get(id) === r) this.openRecords.delete(id);
    this.counters.submitted--;
    this.count(r.status, -1);
    const waiting = this.waiters.get(id);
    if (waiting === undefined) return;
    this.waiters.delete(id);
    this.rejectWaiters(waiting, new StateError(`Task ${id} was not enqueued: its publish failed.`));
  }

  /** The record itself, uncopied (the caller must not change it). */
  peek(id: string): Readonly<Task> | undefined {
    return this.records.get(id);
  }

  get(id: string): Task | undefined {
    const r = this.records.get(id);
    if (!r) return undefined;
    const { runWorker: _w, runAttempt: _a, ...task } = r;
    return { ...task, tags: [...r.tags], metadata: { ...r.metadata } };
  }

  status(id: string): TaskStatus | undefined {
    return this.records.get(id)?.status;
  }

  /** Moves a task by a machine event; false when the machine ignores it in the current state. */
  transition(id: string, event: TaskEventType, retryAllowed = false): boolean {
    const r = this.records.get(id);
    return r !== undefined && this.move(r, event, retryAllowed);
  }

  /** transition() on a record in hand (no second lookup in a map of up to maxFinished records). */
  private move(r: TaskRecord, event: TaskEventType, retryAllowed = false): boolean {
    const next = nextTaskState(r.status as TaskState, event, retryAllowed);
    if (next === undefined) return false;
    this.setStatus(r, next);
    return true;
  }

  /** Applies an event reported by a worker. Unknown tasks (other producers') are ignored. */
  apply(event: TaskEvent): void {
    const r = this.records.get(event.taskId);
    if (!r) return;
    if (isTerminal(r.status)) {
      if (event.kind === "started") this.counters.reruns++; // a finished task runs again
      const isOutcome = event.kind === "completed" || event.kind === "failed" || event.kind === "timeout";
      const sameRun = r.runWorker === event.workerId && r.runAttempt === (event.attempt ?? 0);
      if (isOutcome && r.runWorker !== undefined && !sameRun) this.counters.duplicates++;
      return;
    }
    const at = event.at;
    if (event.kind === "queued") return;
    if (event.kind === "started") {
      if (!this.move(r, "START")) {
        // Already running: a second start (no retry in between) is a rerun — even from the same
        // worker and attempt (a broker that lost its state delivers a message again as new).
        // A run's "started" is sent once, never again.
        if (r.status === "running") {
          this.counters.reruns++;
          r.workerId = event.workerId;
          r.retryCount = Math.max(0, (event.attempt ?? 1) - 1);
        }
        return;
      }
      r.startedAt = at;
      r.workerId = event.workerId;
      r.retryCount = Math.max(0, (event.attempt ?? 1) - 1);
      return;
    }
    if (event.kind === "cancelled") {
      this.move(r, "CANCEL");
      return;
    }
    // An outcome: a missed "started" (fan-out is at-most-once) is implied by it.
    if (r.status === "queued") {
      this.move(r, "START");
      r.workerId = event.workerId;
      r.startedAt = event.durationMs === undefined ? at : at - event.durationMs;
    }
    if (event.workerId !== undefined) {
      r.runWorker = event.workerId;
      r.runAttempt = event.attempt ?? 0;
      r.workerId = event.workerId; // the run that produced the outcome (a redelivery may have moved it)
    } else {
      r.runWorker = undefined;
    }
    if (event.attempt !== undefined) r.retryCount = Math.max(0, event.attempt - 1);
    if (event.kind !== "retrying") r.completedAt = at;
    switch (event.kind) {
      case "completed":
        r.result = event.result;
        r.error = undefined;
        this.move(r, "COMPLETE");
        break;
      case "retrying":
        r.error = event.error;
        if (this.move(r, "FAIL", true)) this.counters.retried++;
        break;
      case "failed":
        r.error = event.error;
        this.move(r, "FAIL", false);
        break;
      case "timeout":
        r.error = event.error;
        this.move(r, "TIME_OUT", false);
        break;
    }
    if (!isTerminal(r.status)) r.completedAt = undefined;
  }

  /** Marks a task cancelled (it never runs, or its run is aborted); false if it already ended. */
  cancel(id: string): boolean {
    const r = this.records.get(id);
    if (!r) throw new UnknownTaskError(id);
    if (nextTaskState(r.status as TaskState, "CANCEL", false) === undefined) return false;
    r.completedAt = this.clock.now();
    r.error = "cancelled";
    return this.transition(id, "CANCEL");
  }

  result(id: string): TaskResult {
    const r = this.records.get(id);
    if (!r) throw new UnknownTaskError(id);
    return resultOf(r);
  }

  /** Resolves when the task reaches a terminal state. Never polls. */
  wait(id: string, options: WaitOptions = {}): Promise<TaskResult> {
    if (options.timeoutMs !== undefined) {
      try {
        checked("The wait's timeoutMs", options.timeoutMs, WAIT_MS);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const r = this.records.get(id);
    if (!r) return Promise.reject(new UnknownTaskError(id));
    if (isTerminal(r.status)) return Promise.resolve(resultOf(r));
    return new Promise<TaskResult>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      this.addWaiter(id, waiter);
      if (options.timeoutMs !== undefined) {
        waiter.timer = this.clock.setTimeout(() => {
          this.dropWaiter(id, waiter);
          waiter.cleanup?.();
          reject(new WaitTimeoutError(id, options.timeoutMs as number));
        }, options.timeoutMs);
      }
      const signal = options.signal;
      if (signal) {
        const onAbort = () => {
          this.dropWaiter(id, waiter);
          this.clock.clearTimeout(waiter.timer);
          reject(signal.reason instanceof Error ? signal.reason : new StateError("The wait was aborted."));
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        waiter.cleanup = () => signal.removeEventListener("abort", onAbort);
      }
    });
  }

  private addWaiter(id: string, waiter: Waiter): void {
    const current = this.waiters.get(id);
    if (current === undefined) this.waiters.set(id, waiter);
    else if (Array.isArray(current)) current.push(waiter);
    else this.waiters.set(id, [current, waiter]);
  }

  private dropWaiter(id: string, waiter: Waiter): void {
    const current = this.waiters.get(id);
    if (current === waiter) {
      this.waiters.delete(id);
    } else if (Array.isArray(current)) {
      const i = current.indexOf(waiter);
      if (i >= 0) current.splice(i, 1);
      if (current.length === 0) this.waiters.delete(id);
    }
  }

  onTerminal(listener: (task: Task) => void): () => void {
    this.terminalListeners.add(listener);
    return () => this.terminalListeners.delete(listener);
  }

  /** Tasks not yet in a terminal state. */
  *open(): IterableIterator<Task> {
    for (const r of this.openRecords.values()) if (!isTerminal(r.status)) yield r;
  }

  /** Rejects every waiter (the owner is closing). */
  rejectAll(error: Error): void {
    for (const entry of this.waiters.values()) this.rejectWaiters(entry, error);
    this.waiters.clear();
  }

  private rejectWaiters(entry: Waiter | Waiter[], error: Error): void {
    for (const w of Array.isArray(entry) ? entry : [entry]) {
      this.clock.clearTimeout(w.timer);
      w.cleanup?.();
      w.reject(error);
    }
  }

  private setStatus(r: TaskRecord, next: TaskStatus): void {
    this.count(r.status, -1);
    r.status = next;
    this.count(next, 1);
    if (!isTerminal(next)) return;
    if (this.openRecords.get(r.id) === r) this.openRecords.delete(r.id);
    const waiting = this.waiters.get(r.id);
    if (waiting) {
      this.waiters.delete(r.id);
      const result = resultOf(r);
      if (Array.isArray(waiting)) for (const w of waiting) settleWaiter(this.clock, w, result);
      else settleWaiter(this.clock, waiting, result);
    }
    for (const l of this.terminalListeners) l(r);
    this.finished.push(r.id);
    this.evict();
  }

  private count(status: TaskStatus, delta: number): void {
    this.counters[status] += delta;
  }

  private evict(): void {
    while (this.finished.length - this.finishedHead > this.maxFinished) {
      const id = this.finished[this.finishedHead++] as string;
      const r = this.records.get(id);
      if (r && isTerminal(r.status)) this.records.delete(id);
    }
    if (this.finishedHead > 4096 && this.finishedHead * 2 > this.finished.length) {
      this.finished.splice(0, this.finishedHead);
      this.finishedHead = 0;
    }
  }
}

function settleWaiter(clock: Clock, w: Waiter, result: TaskResult): void {
  if (w.timer !== undefined) clock.clearTimeout(w.timer);
  w.cleanup?.();
  w.resolve(result);
}

function resultOf(r: TaskRecord): TaskResult {
  const result: TaskResult = { taskId: r.id, status: r.status };
  if (r.result !== undefined) result.result = r.result;
  if (r.error !== undefined) result.error = r.error;
  if (r.workerId !== undefined) result.workerId = r.workerId;
  if (r.completedAt !== undefined && r.startedAt !== undefined)
    result.durationMs = r.completedAt - r.startedAt;
  return result;
}
