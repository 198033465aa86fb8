/**
 * The seed's TaskQueue on a transport: enqueue with priority, timeout, retries and metadata; a
 * pull API (dequeue / complete / fail) for code that runs tasks itself; cancel; waitForTask.
 * Coordinator and WorkerPool use it as their client side. It tracks the tasks it enqueued from
 * the events workers publish, so waiting never polls.
 */
import { context as otelContext, propagation } from "@opentelemetry/api";
import { InMemoryTransport } from "../transports/memory/memory.transport.js";
import type { Consumer, Delivery, Subscription, Transport } from "../transports/transport.js";
import { type Clock, systemClock } from "./clock.js";
import { decodeTask, decodeTaskEvents, encode, type TaskEnvelope, type TaskEvent } from "./codec.js";
import { DEFAULT_RETRY_BACKOFF, type RetryBackoff, validateKeys } from "./config.js";
import {
  ConfigError,
  describeThrown,
  FastAgenticError,
  PublishError,
  QueueFullError,
  StateError,
  UnknownTaskError,
  ValidationError,
} from "./errors.js";
import { newId } from "./ids.js";
import {
  assertQueueName,
  assertTaskType,
  normalizeTags,
  queuesServedBy,
  subjects,
  workQueueName,
} from "./names.js";
import { DEFAULT_MAX_REDELIVERIES, poisonError, publishTaskEvent, settleOutcome } from "./task-outcome.js";
import type { Outcome } from "./task-runner.js";
import { TaskStore } from "./task-store.js";
import { type SubmitOptions, type Task, TaskPriority, type TaskResult, type WaitOptions } from "./types.js";

export interface TaskQueueOptions {
  /** Queues with different names on one transport are independent. Default "default". */
  name?: string;
  /** enqueue() throws QueueFullError past this many tasks waiting. Default 10,000. */
  maxQueueSize?: number;
  transport?: Transport;
  clock?: Clock;
  retryBackoff?: Partial<RetryBackoff>;
  /** Timeout of tasks that do not set one. Default 300,000 ms. */
  defaultTimeoutMs?: number;
  /** Retries of tasks that do not set them. Default 0. */
  defaultRetries?: number;
  /** Finished tasks remembered for getTask()/waitForTask(). Default 100,000. */
  maxFinishedTasks?: number;
}

export interface EnqueueOptions extends SubmitOptions {
  taskType: string;
  data?: unknown;
}

export interface DequeueOptions {
  workerId?: string;
  /** Resolve with null after this long without a task. Default: wait indefinitely. */
  timeoutMs?: number;
  /** Task types to take. Default: every type this queue has enqueued. */
  types?: string[];
  /** With `types`: the tags this consumer carries. */
  tags?: string[];
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

const PRIORITIES = new Set<number>(Object.values(TaskPriority));
const ENQUEUE_KEYS = [
  "taskType",
  "data",
  "priority",
  "timeoutMs",
  "retries",
  "tags",
  "metadata",
  "id",
  "headers",
];

export class TaskQueue {
  readonly name: string;
  readonly maxQueueSize: number;
  readonly transport: Transport;
  /** Undecodable messages met by dequeue() (dead-lettered) or undecodable events ignored. */
  malformedMessages = 0;

  protected readonly clock: Clock;
  protected readonly store: TaskStore;
  private readonly backoff: RetryBackoff;
  private readonly defaultTimeoutMs: number;
  private readonly defaultRetries: number;
  private readonly queuesSeen = new Set<string>();
  private readonly held = new Map<string, Held>();
  private readonly pullWaiters: PullWaiter[] = [];
  private readonly buffer: Delivery[] = [];
  private pumping = false;
  private puller?: Consumer;
  private pullerKey = "";
  private subscription?: Subscription;
  private starting?: Promise<void>;
  private closed = false;

  constructor(options: TaskQueueOptions = {}) {
    validateKeys("TaskQueueOptions", options, [
      "name",
      "maxQueueSize",
      "transport",
      "clock",
      "retryBackoff",
      "defaultTimeoutMs",
      "defaultRetries",
      "maxFinishedTasks",
    ]);
    this.name = options.name ?? "default";
    assertQueueName(this.name);
    this.maxQueueSize = positiveInt(options.maxQueueSize ?? 10_000, "maxQueueSize");
    this.clock = options.clock ?? systemClock;
    this.transport = options.transport ?? new InMemoryTransport({ clock: this.clock });
    this.backoff = { ...DEFAULT_RETRY_BACKOFF, ...options.retryBackoff };
    this.defaultTimeoutMs = positiveInt(options.defaultTimeoutMs ?? 300_000, "defaultTimeoutMs");
    this.defaultRetries = nonNegativeInt(options.defaultRetries ?? 0, "defaultRetries");
    this.store = new TaskStore(this.clock, options.maxFinishedTasks ?? 100_000);
  }

  /** Connects and starts listening to task events (done lazily by the first call that needs it). */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new StateError(`TaskQueue "${this.name}" is closed.`));
    this.starting ??= (async () => {
      await this.transport.connect();
      this.subscription = await this.transport.subscribe(subjects.taskEvents(this.name), (m) => {
        let events: TaskEvent[];
        try {
          events = decodeTaskEvents(m.body);
        } catch {
          this.malformedMessages++;
          return;
        }
        for (const event of events) this.store.apply(event);
      });
    })().catch((error) => {
      this.starting = undefined;
      throw error;
    });
    return this.starting;
  }

  /** Tasks waiting (pending or queued) among those this queue enqueued. */
  get size(): number {
    return this.store.counters.pending + this.store.counters.queued;
  }

  /** Every work queue name this queue has enqueued to (for depth sampling). */
  get workQueues(): string[] {
    return [...this.queuesSeen];
  }

  async enqueue(options: EnqueueOptions): Promise<Task> {
    const task = await this.enqueueRecord(options);
    return this.store.get(task.id) ?? task;
  }

  /** @internal enqueue() without the defensive copy: the caller must not mutate the result. */
  async enqueueRecord(options: EnqueueOptions): Promise<Task> {
    if (typeof options !== "object" || options === null) {
      throw new ConfigError(
        "enqueue() takes an options object: { taskType, data, priority?, timeoutMs?, … }.",
      );
    }
    validateKeys("enqueue() options", options, ENQUEUE_KEYS);
    const task = this.buildTask(options);
    if (this.store.has(task.id)) return this.store.get(task.id) as Task;
    if (this.size >= this.maxQueueSize) throw new QueueFullError(this.size, this.maxQueueSize);
    const headers = { ...options.headers };
    if (headers["traceparent"] === undefined) propagation.inject(otelContext.active(), headers);
    // Empty tags, metadata and headers and zero retries are left out of the wire form (the decoder
    // restores them): smaller messages, less to encode and parse.
    const wire: Partial<TaskEnvelope> = {
      v: 1,
      id: task.id,
      type: task.type,
      data: task.data,
      priority: task.priority,
      timeoutMs: task.timeoutMs,
      enqueuedAt: task.createdAt,
      queue: this.name,
    };
    if (task.retries > 0) wire.retries = task.retries;
    if (task.tags.length > 0) wire.tags = task.tags;
    if (hasKeys(task.metadata)) wire.metadata = task.metadata;
    if (hasKeys(headers)) wire.headers = headers;
    const body = encode(wire, this.transport.maxPayloadBytes, "task data");
    const queue = workQueueName(this.name, task.type, task.tags);
    await this.start();
    this.store.add(task);
    this.store.transition(task.id, "ENQUEUE");
    try {
      await this.transport.enqueue(queue, body, { priority: task.priority, dedupId: task.id });
    } catch (error) {
      this.store.remove(task.id);
      if (error instanceof FastAgenticError) throw error;
      throw new PublishError(`Could not enqueue task ${task.id}: ${describeThrown(error)}`, {
        cause: error,
        retryable: true,
      });
    }
    if (!this.queuesSeen.has(queue)) {
      this.queuesSeen.add(queue);
      if (this.pullWaiters.length > 0 || this.held.size > 0) void this.refreshPuller();
    }
    return task;
  }

  /** Takes the next task (highest priority first), or null after `timeoutMs`. */
  async dequeue(options: DequeueOptions = {}): Promise<Task | null> {
    await this.start();
    const workerId = options.workerId ?? "dequeue";
    if (options.types !== undefined) {
      for (const q of queuesServedBy(this.name, options.types, normalizeTags(options.tags)))
        this.queuesSeen.add(q);
    }
    return new Promise<Task | null>((resolve) => {
      const waiter: PullWaiter = { workerId, resolve };
      if (options.timeoutMs !== undefined) {
        waiter.timer = this.clock.setTimeout(() => {
          waiter.done = true;
          const i = this.pullWaiters.indexOf(waiter);
          if (i >= 0) this.pullWaiters.splice(i, 1);
          this.updatePullCredit();
          resolve(null);
        }, options.timeoutMs);
      }
      this.pullWaiters.push(waiter);
      void this.refreshPuller();
      this.pump();
    });
  }

  async complete(taskId: string, result?: unknown): Promise<TaskResult> {
    return this.finish(taskId, { kind: "completed", result });
  }

  /** Fails the current attempt: back to "queued" (after back-off) while retries remain. */
  async fail(taskId: string, error: unknown): Promise<TaskResult> {
    return this.finish(taskId, { kind: "failed", error: describeThrown(error) });
  }

  /** A cancelled task never runs; a running one is aborted wherever it runs. */
  async cancel(taskId: string): Promise<TaskResult> {
    if (!this.store.cancel(taskId)) return this.store.result(taskId);
    const held = this.held.get(taskId);
    if (held) {
      this.held.delete(taskId);
      await held.delivery.ack();
      this.updatePullCredit();
    }
    const body = encode({ v: 1, kind: "cancel", taskIds: [taskId] }, this.transport.maxPayloadBytes);
    await this.transport.publish(subjects.control, body);
    return this.store.result(taskId);
  }

  /** Resolves with the task's final result (completed, failed, cancelled or timeout). */
  waitForTask(taskId: string, options: WaitOptions = {}): Promise<TaskResult> {
    return this.store.wait(taskId, options);
  }

  async getTask(taskId: string): Promise<Task | undefined> {
    return this.store.get(taskId);
  }

  /** Calls `listener` with each task this queue enqueued once it is finished; returns an unsubscribe. */
  onTaskFinished(listener: (task: Task) => void): () => void {
    return this.store.onTerminal(listener);
  }

  getStats() {
    const c = this.store.counters;
    return {
      name: this.name,
      queueSize: c.pending + c.queued,
      maxQueueSize: this.maxQueueSize,
      submitted: c.submitted,
      queued: c.queued,
      running: c.running,
      completed: c.completed,
      failed: c.failed,
      cancelled: c.cancelled,
      timeout: c.timeout,
      retried: c.retried,
      duplicates: c.duplicates,
      malformedMessages: this.malformedMessages,
    };
  }

  /** Stops listening; tasks taken with dequeue() and not finished go back to the queue. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.pullWaiters.splice(0)) {
      this.clock.clearTimeout(w.timer);
      w.resolve(null);
    }
    await this.puller?.stop();
    this.held.clear();
    await this.subscription?.unsubscribe();
    this.store.rejectAll(
      new StateError(`TaskQueue "${this.name}" was closed while a caller waited for a task.`),
    );
  }

  /** Validates enqueue options into a new Task record (status pending). */
  protected buildTask(options: EnqueueOptions): Task {
    assertTaskType(options.taskType);
    const priority = options.priority ?? TaskPriority.NORMAL;
    if (!PRIORITIES.has(priority)) {
      throw new ValidationError(
        `Invalid priority ${JSON.stringify(priority)}: use TaskPriority.LOW (0), NORMAL (5), HIGH (10) or CRITICAL (20).`,
      );
    }
    const metadata = options.metadata ?? {};
    if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
      throw new ValidationError(`metadata must be a plain object, got ${JSON.stringify(metadata)}.`);
    }
    if (
      options.id !== undefined &&
      (typeof options.id !== "string" || !/^[A-Za-z0-9_.:-]{1,128}$/.test(options.id))
    ) {
      throw new ValidationError(
        `Invalid task id ${JSON.stringify(options.id)}: use 1-128 letters, digits, "_", "-", ":" or ".".`,
      );
    }
    return {
      id: options.id ?? newId("task"),
      type: options.taskType,
      data: options.data === undefined ? null : options.data,
      priority,
      status: "pending",
      createdAt: this.clock.now(),
      timeoutMs: positiveInt(options.timeoutMs ?? this.defaultTimeoutMs, "timeoutMs"),
      retries: nonNegativeInt(options.retries ?? this.defaultRetries, "retries"),
      retryCount: 0,
      tags: normalizeTags(options.tags),
      metadata,
    };
  }

  private async finish(taskId: string, outcome: Outcome): Promise<TaskResult> {
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
    const queues = [...this.queuesSeen];
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
    const attempt = delivery.deliveryCount;
    if (this.store.status(task.id) === "cancelled") {
      await delivery.ack();
      return null;
    }
    const poison = poisonError(attempt, task.retries, DEFAULT_MAX_REDELIVERIES);
    if (poison !== undefined) {
      const event = await publishTaskEvent(this.transport, task.queue, {
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
    const event = await publishTaskEvent(this.transport, task.queue, {
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

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

function positiveInt(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
    throw new ConfigError(
      `${what} must be a positive integer (milliseconds for durations); got ${JSON.stringify(value)}.`,
    );
  }
  return value;
}

function nonNegativeInt(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new ConfigError(`${what} must be an integer ≥ 0; got ${JSON.stringify(value)}.`);
  }
  return value;
}
