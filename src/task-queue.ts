/**
 * The seed's TaskQueue on a transport: enqueue with priority, timeout, retries and metadata; a
 * pull API (dequeue / complete / fail) for code that runs tasks itself; cancel; waitForTask.
 * Coordinator and WorkerPool use it as their client side. It tracks the tasks it enqueued from
 * the events workers publish, so waiting never polls.
 */
import { context as otelContext, propagation } from "@opentelemetry/api";
import { InMemoryTransport } from "../transports/memory/memory.transport.js";
import type {
  Subscription,
  Transport,
  EnqueueOptions as TransportEnqueueOptions,
} from "../transports/transport.js";
import { type Clock, systemClock } from "./clock.js";
import { decodeTaskEvents, encode, type TaskEnvelope, type TaskEvent } from "./codec.js";
import { type RetryBackoff, resolveRetryBackoff, validateKeys } from "./config.js";
import {
  ConfigError,
  describeThrown,
  FastAgenticError,
  PublishError,
  QueueFullError,
  StateError,
  ValidationError,
} from "./errors.js";
import { newId } from "./ids.js";
import { checked, durationIn, intIn, LIMITS, showValue, wholeMsIn } from "./limits.js";
import {
  assertQueueName,
  assertTaskType,
  laneOf,
  MAX_TAGS_PER_WORKER,
  normalizeTags,
  subjects,
  workQueueName,
} from "./names.js";
import { assertSameTask } from "./task-id-reuse.js";
import { TaskPuller } from "./task-puller.js";
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
  /**
   * Task types to take. Default: every type this queue has enqueued. Every type travels on the
   * queue's shared lane (src/names.ts), so naming types starts taking from it even before this
   * TaskQueue enqueued anything, and the next task of the queue is returned whatever its type.
   */
  types?: string[];
  /** With `types`: the tags this consumer carries (validated). */
  tags?: string[];
}

const PRIORITIES = new Set<number>(Object.values(TaskPriority));
const TIMEOUT_MS = wholeMsIn(1);
const RETRIES = intIn(0, LIMITS.retries);
const WAIT_MS = durationIn(0);
/** When, after a reconnect, to ask workers for missed outcomes (subscriptions come back over time). */
const RESYNC_DELAYS_MS = [250, 1000, 3000, 10_000];
const OPTION_KEYS = ["priority", "timeoutMs", "retries", "tags", "metadata", "id", "headers"];
const ENQUEUE_KEYS = ["taskType", "data", ...OPTION_KEYS];
/** The options submit() takes (and how long to wait for the result). */
export const SUBMIT_KEYS = [...OPTION_KEYS, "waitTimeoutMs"];

export class TaskQueue {
  readonly name: string;
  readonly maxQueueSize: number;
  readonly transport: Transport;
  private malformedEvents = 0;

  protected readonly clock: Clock;
  protected readonly store: TaskStore;
  private readonly backoff: RetryBackoff;
  private readonly defaultTimeoutMs: number;
  private readonly defaultRetries: number;
  private readonly queuesSeen = new Set<string>();
  private readonly untaggedQueues = new Map<string, string>();
  private readonly puller: TaskPuller;
  private subscription?: Subscription;
  /** Where workers send the events of tasks enqueued here (transports with inboxes; else the subject). */
  private inbox?: string;
  private stopWatching?: () => void;
  private resyncTimers: Array<ReturnType<Clock["setTimeout"]>> = [];
  private starting?: Promise<void>;
  private closed = false;
  private started = false;

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
    this.maxQueueSize = checked(
      "TaskQueueOptions.maxQueueSize",
      options.maxQueueSize ?? 10_000,
      intIn(1, LIMITS.queueSize),
    );
    this.clock = options.clock ?? systemClock;
    this.transport = options.transport ?? new InMemoryTransport({ clock: this.clock });
    this.backoff = resolveRetryBackoff(options.retryBackoff, "TaskQueueOptions.retryBackoff");
    this.defaultTimeoutMs = checked(
      "TaskQueueOptions.defaultTimeoutMs",
      options.defaultTimeoutMs ?? 300_000,
      wholeMsIn(1),
    );
    this.defaultRetries = checked(
      "TaskQueueOptions.defaultRetries",
      options.defaultRetries ?? 0,
      intIn(0, LIMITS.retries),
    );
    const maxFinished = checked(
      "TaskQueueOptions.maxFinishedTasks",
      options.maxFinishedTasks ?? 100_000,
      intIn(0, LIMITS.finishedTasks),
    );
    this.store = new TaskStore(this.clock, maxFinished);
    this.puller = new TaskPuller({
      transport: this.transport,
      clock: this.clock,
      store: this.store,
      backoff: this.backoff,
      queues: () => [...this.queuesSeen],
    });
  }

  /** Connects and starts listening to task events (done lazily by the first call that needs it). */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new StateError(`TaskQueue "${this.name}" is closed.`));
    this.starting ??= (async () => {
      await this.transport.connect();
      this.stopWatching = this.watchReconnects();
      this.subscription = await this.transport.subscribe(subjects.taskEvents(this.name), (m) => {
        let events: TaskEvent[];
        try {
          events = decodeTaskEvents(m.body);
        } catch {
          this.malformedEvents++;
          return;
        }
        for (const event of events) this.store.apply(event);
        if (this.eventTap) for (const event of events) this.eventTap(event);
      });
      this.inbox = this.subscription.inbox;
      this.started = true;
    })().catch((error) => {
      this.starting = undefined;
      throw error;
    });
    return this.starting;
  }

  /** Undecodable messages met: task messages (dead-lettered by dequeue()) and task events (ignored). */
  get malformedMessages(): number {
    return this.malformedEvents + this.puller.malformedMessages;
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
    return this.enqueueTask(options.taskType, options.data, options);
  }

  /**
   * @internal What enqueue() calls: the type and data apart from the options, so that no merged
   * copy of them is made per task. The caller has checked the option names (ENQUEUE_KEYS).
   */
  async enqueueTask(taskType: string, data: unknown, options: SubmitOptions): Promise<Task> {
    const task = this.buildTask(taskType, data, options);
    if (!this.started) await this.start();
    const published = this.send(task, options);
    if (published === undefined) return this.store.get(task.id) as Task;
    await published;
    return task;
  }

  /**
   * @internal What submit() calls: enqueues, then resolves with the task and its result. The wait
   * starts as soon as the task is stored, before the broker confirms it: a quick worker's outcome
   * can arrive first, and by the time the confirm is handled, more than `maxFinishedTasks` others
   * may have finished and pushed its record out.
   */
  async submitTask(
    taskType: string,
    data: unknown,
    options: SubmitOptions,
    wait: WaitOptions,
  ): Promise<{ task: Task; result: TaskResult }> {
    const task = this.buildTask(taskType, data, options);
    if (!this.started) await this.start();
    const published = this.send(task, options);
    const result = this.store.wait(task.id, wait);
    if (published !== undefined) {
      result.catch(() => {}); // if the publish fails, its error is what the caller gets
      await published;
    }
    return { task, result: await result };
  }

  /**
   * Encodes and stores a new task (pending → queued) and publishes it: the promise settles once
   * the broker has it, or, after forgetting the task, rejects with a PublishError. Undefined when
   * the task carries a caller's own id that is stored already (nothing is sent again).
   */
  private send(task: Task, options: SubmitOptions): Promise<void> | undefined {
    // A generated id is new by construction: only a caller's own id can be a repeat.
    if (options.id !== undefined) {
      const known = this.store.peek(task.id);
      if (known !== undefined) {
        assertSameTask(known, task.type, task.data);
        return undefined;
      }
    }
    if (this.size >= this.maxQueueSize) throw new QueueFullError(this.size, this.maxQueueSize);
    const headers = headersOf(options);
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
    if (this.inbox !== undefined) wire.replyTo = this.inbox;
    const body = encode(wire, this.transport.maxPayloadBytes, "task data");
    const queue = this.workQueue(task.type, task.tags);
    this.store.addAndMove(task, "ENQUEUE");
    // Only a caller's own id can be enqueued twice (a generated one is new, and a failed enqueue is
    // not retried here), so only it is a dedupId: the AMQP and in-memory transports remember each
    // dedupId for their window, which costs time and memory per task.
    const enqueueOptions: TransportEnqueueOptions =
      options.id === undefined ? { priority: task.priority } : { priority: task.priority, dedupId: task.id };
    let sending: Promise<void>;
    try {
      sending = this.transport.enqueue(queue, body, enqueueOptions);
    } catch (error) {
      sending = Promise.reject(error);
    }
    return sending.then(
      () => {
        if (!this.queuesSeen.has(queue)) {
          this.queuesSeen.add(queue);
          this.puller.queuesChanged();
        }
      },
      (error: unknown) => {
        this.store.remove(task.id);
        if (error instanceof FastAgenticError) throw error;
        throw new PublishError(`Could not enqueue task ${task.id}: ${describeThrown(error)}`, {
          cause: error,
          retryable: true,
        });
      },
    );
  }

  /** The work queue of a task type and tag set (untagged ones remembered: no name built per task). */
  private workQueue(type: string, tags: readonly string[]): string {
    if (tags.length > 0) return workQueueName(this.name, type, tags);
    let name = this.untaggedQueues.get(type);
    if (name === undefined) {
      name = workQueueName(this.name, type, tags);
      if (this.untaggedQueues.size < 1000) this.untaggedQueues.set(type, name);
    }
    return name;
  }

  /** Takes the next task (highest priority first), or null after `timeoutMs`. */
  async dequeue(options: DequeueOptions = {}): Promise<Task | null> {
    if (options.timeoutMs !== undefined) checked("dequeue() timeoutMs", options.timeoutMs, WAIT_MS);
    await this.start();
    if (options.types !== undefined) {
      // The shared lane carries every type: dequeue() takes the next task of the queue.
      normalizeTags(options.tags);
      for (const type of options.types) assertTaskType(type);
      this.queuesSeen.add(laneOf(this.name));
    }
    return this.puller.dequeue(options.workerId ?? "dequeue", options.timeoutMs);
  }

  /** Completes a task that dequeue() returned. */
  async complete(taskId: string, result?: unknown): Promise<TaskResult> {
    return this.puller.finish(taskId, { kind: "completed", result });
  }

  /** Fails the current attempt: back to "queued" (after back-off) while retries remain. */
  async fail(taskId: string, error: unknown): Promise<TaskResult> {
    return this.puller.finish(taskId, { kind: "failed", error: describeThrown(error) });
  }

  /** A cancelled task never runs; a running one is aborted wherever it runs. */
  async cancel(taskId: string): Promise<TaskResult> {
    if (!this.store.cancel(taskId)) return this.store.result(taskId);
    await this.puller.release(taskId);
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

  /** @internal Up to `limit` tasks not finished yet (for dashboards). */
  openTasks(limit: number): Task[] {
    const out: Task[] = [];
    for (const t of this.store.open()) {
      if (out.length >= limit) break;
      out.push(t);
    }
    return out;
  }

  /** @internal A dead-lettered task re-enqueued by hand: tracked again (queued), so it can be awaited. */
  trackRetried(task: Task): () => void {
    return this.store.reopen(task);
  }

  private eventTap?: (event: TaskEvent) => void;

  /**
   * @internal Hears every task event this queue receives (its own tasks', and on transports whose
   * events fan out, other clients' too): the coordinator follows who holds what (src/cluster/).
   */
  tapTaskEvents(listener: ((event: TaskEvent) => void) | undefined): void {
    this.eventTap = listener;
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
      reruns: c.reruns,
      malformedMessages: this.malformedMessages,
    };
  }

  /** Stops listening; tasks taken with dequeue() and not finished go back to the queue. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopWatching?.();
    for (const t of this.resyncTimers.splice(0)) this.clock.clearTimeout(t);
    await this.puller.close();
    await this.subscription?.unsubscribe();
    this.store.rejectAll(
      new StateError(`TaskQueue "${this.name}" was closed while a caller waited for a task.`),
    );
  }

  /**
   * Task events are at most once: while this client's connection was down, outcomes may have been
   * published that it never got. After a reconnect it asks the workers, a few times as the
   * subscriptions come back, to send again the outcomes of its open tasks.
   */
  private watchReconnects(): () => void {
    let wasDown = false;
    return this.transport.onStatus((e) => {
      if (e.state === "reconnecting") wasDown = true;
      else if (e.state === "connected" && wasDown) {
        wasDown = false;
        for (const t of this.resyncTimers.splice(0)) this.clock.clearTimeout(t);
        for (const delay of RESYNC_DELAYS_MS) {
          this.resyncTimers.push(this.clock.setTimeout(() => void this.requestResync(), delay));
        }
      }
    });
  }

  /** Asks the workers for the outcomes of this queue's open tasks (in messages that fit the transport). */
  async requestResync(): Promise<void> {
    if (this.closed) return;
    const open = [...this.store.open()].map((t) => t.id);
    const perMessage = Math.max(1, Math.floor(this.transport.maxPayloadBytes / 2 / 64));
    for (let i = 0; i < open.length; i += perMessage) {
      const command = {
        v: 1,
        kind: "resync",
        requestId: newId("resync"),
        queue: this.name,
        taskIds: open.slice(i, i + perMessage),
      };
      await this.transport
        .publish(subjects.control, encode(command, this.transport.maxPayloadBytes))
        .catch(() => {}); // still down: a later round asks again
    }
  }

  /** Validates enqueue options into a new Task record (status pending). */
  protected buildTask(taskType: string, data: unknown, options: SubmitOptions): Task {
    assertTaskType(taskType);
    const priority = options.priority ?? TaskPriority.NORMAL;
    if (!PRIORITIES.has(priority)) {
      throw new ValidationError(
        `Invalid priority ${showValue(priority)}: use TaskPriority.LOW (0), NORMAL (5), HIGH (10) or CRITICAL (20).`,
      );
    }
    const metadata = options.metadata ?? {};
    if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
      throw new ValidationError(`metadata must be a plain object, got ${showValue(metadata)}.`);
    }
    if (
      options.id !== undefined &&
      (typeof options.id !== "string" || !/^[A-Za-z0-9_.:-]{1,128}$/.test(options.id))
    ) {
      throw new ValidationError(
        `Invalid task id ${showValue(options.id)}: use 1-128 letters, digits, "_", "-", ":" or ".".`,
      );
    }
    return {
      id: options.id ?? newId("task"),
      type: taskType,
      data: data === undefined ? null : data,
      priority,
      status: "pending",
      createdAt: this.clock.now(),
      timeoutMs:
        options.timeoutMs === undefined
          ? this.defaultTimeoutMs
          : checked("timeoutMs", options.timeoutMs, TIMEOUT_MS),
      retries:
        options.retries === undefined ? this.defaultRetries : checked("retries", options.retries, RETRIES),
      retryCount: 0,
      tags: taskTags(options.tags),
      metadata,
    };
  }
}

/** Whether `o` has an enumerable key; true when reading it throws (encoding it then says why). */
function hasKeys(o: object): boolean {
  try {
    for (const _ in o) return true;
  } catch {
    return true;
  }
  return false;
}

/** A copy of the caller's trace headers (a ValidationError when they cannot be read). */
function headersOf(options: SubmitOptions): Record<string, string> {
  if (options.headers === undefined) return {};
  try {
    return { ...options.headers };
  } catch (error) {
    throw new ValidationError(`headers could not be read (${describeThrown(error)}); pass a plain object.`, {
      cause: error,
    });
  }
}

/** A task's tags, refused when no worker could ever carry them all (it would wait forever). */
function taskTags(tags: readonly string[] | undefined): string[] {
  const normalized = normalizeTags(tags);
  if (normalized.length > MAX_TAGS_PER_WORKER) {
    throw new ValidationError(
      `A task with ${normalized.length} tags can never run: a worker carries at most ${MAX_TAGS_PER_WORKER} ` +
        "tags. Merge related tags into one.",
    );
  }
  return normalized;
}
