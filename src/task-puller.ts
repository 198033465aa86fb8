/**
 * The pull side of a TaskQueue (dequeue / complete / fail): one transport consumer over the
 * queue's work queues whose concurrency is the number of deliveries asked for (waiting dequeue()
 * calls) plus those held (dequeued, not yet completed or failed).
 */
import type { Consumer, Delivery, Transport } from "../transports/transport.js";
import { type Clock, every } from "./clock.js";
import { decodeTask, type TaskEnvelope } from "./codec.js";
import type { RetryBackoff } from "./config.js";
import { describeThrown, StateError, UnknownTaskError } from "./errors.js";
import { DEFAULT_MAX_REDELIVERIES, poisonError, publishTaskEvent, settleOutcome } from "./task-outcome.js";
import type { Outcome } from "./task-runner.js";
import type { TaskStore } from "./task-store.js";
import type { Task, TaskResult } from "./types.js";

export interface TaskPullerOptions {
  transport: Transport;
  clock: Clock;
  store: TaskStore;
  backoff: RetryBackoff;
  /** The work queues to take from (the queue's names so far). */
  queues(): string[];
}

interface Held {
  delivery: Delivery;
  task: TaskEnvelope;
  attempt: number;
  startedAt: number;
  workerId: string;
}

interface PullWaiter {
  workerId: string;
  done?: boolean;
  resolve(task: Task | null): void;
  timer?: ReturnType<Clock["setTimeout"]>;
}

export class TaskPuller {
  /** Undecodable task messages met by dequeue() (dead-lettered). */
  malformedMessages = 0;

  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly store: TaskStore;
  private readonly backoff: RetryBackoff;
  private readonly held = new Map<string, Held>();
  private readonly pullWaiters: PullWaiter[] = [];
  private readonly buffer: Delivery[] = [];
  private pumping = false;
  private puller?: Consumer;
  private pullerKey = "";
  private closed = false;
  private stopTouching?: () => void;

  constructor(private readonly options: TaskPullerOptions) {
    this.transport = options.transport;
    this.clock = options.clock;
    this.store = options.store;
    this.backoff = options.backoff;
  }

  /**
   * On a transport whose deliveries expire (JetStream's AckWait), tells it every third of that
   * deadline that the tasks handed out by dequeue() are still being worked on.
   */
  private keepHeldAlive(): void {
    const deadline = this.transport.ackDeadlineMs;
    if (deadline === undefined || this.stopTouching || this.held.size === 0) return;
    this.stopTouching = every(this.clock, Math.max(100, Math.floor(deadline / 3)), () => {
      if (this.held.size === 0) {
        this.stopTouching?.();
        this.stopTouching = undefined;
        return;
      }
      for (const h of this.held.values()) void h.delivery.inProgress().catch(() => {});
    });
  }

  /** Resolves with the next task, or null after `timeoutMs`. */
  dequeue(workerId: string, timeoutMs: number | undefined): Promise<Task | null> {
    return new Promise<Task | null>((resolve) => {
      const waiter: PullWaiter = { workerId, resolve };
      if (timeoutMs !== undefined) {
        waiter.timer = this.clock.setTimeout(() => {
          waiter.done = true;
          const i = this.pullWaiters.indexOf(waiter);
          if (i >= 0) this.pullWaiters.splice(i, 1);
          this.updatePullCredit();
          resolve(null);
        }, timeoutMs);
      }
      this.pullWaiters.push(waiter);
      void this.refreshPuller();
      this.pump();
    });
  }

  /** New work queues appeared: take from them too if anyone is pulling. */
  queuesChanged(): void {
    if (this.pullWaiters.length > 0 || this.held.size > 0) void this.refreshPuller();
  }

  /** Drops a held task (it was cancelled): acked, never completed. */
  async release(taskId: string): Promise<void> {
    const held = this.held.get(taskId);
    if (!held) return;
    this.held.delete(taskId);
    await held.delivery.ack();
    this.updatePullCredit();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.pullWaiters.splice(0)) {
      this.clock.clearTimeout(w.timer);
      w.resolve(null);
    }
    this.stopTouching?.();
    await this.puller?.stop();
    this.held.clear();
  }

  async finish(taskId: string, outcome: Outcome): Promise<TaskResult> {
    const held = this.held.get(taskId);
    if (!held) {
      const status = this.store.status(taskId);
      if (status === undefined) throw new UnknownTaskError(taskId);
      if (status === "completed" || status === "failed" || status === "cancelled" || status === "timeout") {
        return this.store.result(taskId);
      }
      throw new StateError(
        `Task ${taskId} is ${status}, not running here: complete()/fail() take a task that this queue's dequeue() returned.`,
      );
    }
    this.held.delete(taskId);
    const target = {
      transport: this.transport,
      backoff: this.backoff,
      workerId: held.workerId,
      now: () => this.clock.now(),
    };
    const event = await settleOutcome(
      target,
      held.delivery,
      held.task,
      held.attempt,
      outcome,
      this.clock.now() - held.startedAt,
    );
    if (event) this.store.apply(event);
    this.updatePullCredit();
    if (this.store.has(taskId) || !event) return this.store.result(taskId);
    // A task another producer enqueued: this queue has no record of it, only the outcome.
    return {
      taskId,
      status: event.kind === "retrying" ? "queued" : (event.kind as TaskResult["status"]),
      ...(event.kind === "completed" ? { result: event.result } : { error: event.error }),
      durationMs: event.durationMs,
      workerId: event.workerId,
    };
  }

  private async refreshPuller(): Promise<void> {
    const queues = this.options.queues();
    const key = queues.join(",");
    if (key === this.pullerKey || this.closed) return this.updatePullCredit();
    this.pullerKey = key;
    const previous = this.puller;
    this.puller = undefined;
    await previous?.stop();
    if (queues.length === 0) return;
    this.puller = await this.transport.consume(queues, (d) => this.onPulled(d), {
      concurrency: this.credit(),
    });
  }

  private credit(): number {
    return this.held.size + this.pullWaiters.length + this.buffer.length;
  }

  private updatePullCredit(): void {
    this.puller?.setConcurrency(this.credit());
  }

  private onPulled(delivery: Delivery): void {
    this.buffer.push(delivery);
    this.pump();
  }

  /** Hands buffered deliveries to waiting dequeue() calls, one at a time. */
  private pump(): void {
    if (this.pumping) return;
    const waiter = this.pullWaiters.shift();
    const delivery = waiter && this.buffer.shift();
    if (!waiter || !delivery) {
      if (waiter) this.pullWaiters.unshift(waiter);
      return;
    }
    this.pumping = true;
    void this.take(delivery, waiter.workerId).then(async (task) => {
      this.pumping = false;
      if (task && waiter.done) {
        // The caller gave up while the task was being taken: give it back.
        this.held.delete(task.id);
        await delivery.nack();
      } else if (task) {
        waiter.done = true;
        this.clock.clearTimeout(waiter.timer);
        waiter.resolve(task);
      } else if (!waiter.done) {
        this.pullWaiters.unshift(waiter);
      }
      this.updatePullCredit();
      this.pump();
    });
  }

  /** Turns a delivery into a running task; null when it must be skipped (malformed, cancelled, poison). */
  private async take(delivery: Delivery, workerId: string): Promise<Task | null> {
    let task: TaskEnvelope;
    try {
      task = decodeTask(delivery.body);
    } catch (error) {
      this.malformedMessages++;
      await delivery.deadLetter(describeThrown(error));
      return null;
    }
    const at = this.clock.now();
    const attempt = delivery.deliveryCount + (task.priorAttempts ?? 0);
    if (this.store.status(task.id) === "cancelled") {
      await delivery.ack();
      return null;
    }
    const poison = poisonError(attempt, task.retries, DEFAULT_MAX_REDELIVERIES);
    if (poison !== undefined) {
      const event = await publishTaskEvent(this.transport, task, {
        kind: "failed",
        taskId: task.id,
        at,
        attempt,
        workerId,
        error: poison,
      });
      this.store.apply(event);
      await delivery.deadLetter(poison);
      return null;
    }
    this.held.set(task.id, { delivery, task, attempt, startedAt: at, workerId });
    this.keepHeldAlive();
    const event = await publishTaskEvent(this.transport, task, {
      kind: "started",
      taskId: task.id,
      at,
      attempt,
      workerId,
    });
    this.store.apply(event);
    return (
      this.store.get(task.id) ?? {
        id: task.id,
        type: task.type,
        data: task.data,
        priority: task.priority as Task["priority"],
        status: "running",
        createdAt: task.enqueuedAt,
        startedAt: at,
        timeoutMs: task.timeoutMs,
        retries: task.retries,
        retryCount: attempt - 1,
        workerId,
        tags: task.tags,
        metadata: task.metadata,
      }
    );
  }
}
