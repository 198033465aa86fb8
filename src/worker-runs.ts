/**
 * The tasks a Worker is running: taking a delivery through decode, the cancel and poison checks,
 * the handler and its outcome; counting them; aborting them. Split from worker.ts, which keeps the
 * lifecycle, the consumer, heartbeats and control commands.
 */
import type { FinishedRecord } from "../transports/finished-record.js";
import type { Delivery, Transport } from "../transports/transport.js";
import type { Clock } from "./clock.js";
import { StartedRuns } from "./cluster/started-runs.js";
import { decodeTask, type TaskEnvelope, type TaskEvent } from "./codec.js";
import type { RetryBackoff, WorkerConfig } from "./config.js";
import {
  describeThrown,
  MalformedMessageError,
  TaskCancelledError,
  TaskFailedError,
  TaskTimeoutError,
} from "./errors.js";
import type { TaskEventInput } from "./event-publisher.js";
import type { HandlerTable } from "./handlers.js";
import { newId } from "./ids.js";
import type { LaneRouter } from "./lane-router.js";
import { checked, wholeMsIn } from "./limits.js";
import type { Logger } from "./logger.js";
import {
  type OutcomeTarget,
  poisonError,
  publishTaskEvent,
  queueTaskEvent,
  settleOutcome,
} from "./task-outcome.js";
import { TaskRun } from "./task-runner.js";
import type { TaskHandler } from "./types.js";

export interface WorkerRunsOptions {
  workerId: string;
  transport: Transport;
  clock: Clock;
  logger: Logger;
  backoff: RetryBackoff;
  config: WorkerConfig;
  handlers: HandlerTable;
  /** Called when more handlers than `config.maxAbandonedHandlers` run abandoned at once. */
  onTooManyAbandoned?: (abandoned: number) => void;
  /**
   * Asked before an outcome is reported and its delivery settled: false when the worker was
   * fenced (declared dead, or stalled), so the attempt is abandoned instead (src/cluster/worker-fence.ts).
   */
  mayReport?: () => boolean;
  /** Where tasks this worker does not serve go; without one they are sent back after a second. */
  router?: LaneRouter;
}

export interface ExecuteOptions {
  taskId?: string;
  taskType: string;
  data?: unknown;
  timeoutMs?: number;
  metadata?: Record<string, unknown>;
  signal?: AbortSignal;
}

const CANCELLED_MEMORY = 100_000;

export class WorkerRuns {
  /** Messages on a task queue that could not be decoded (dead-lettered). */
  malformedMessages = 0;
  totalCompleted = 0;
  totalFailed = 0;
  /** Handlers still running after their outcome (timed out or cancelled, ignoring ctx.signal). */
  abandonedHandlers = 0;
  totalAbandoned = 0;
  /**
   * Handler runs of a delivery whose delivery count says it was delivered before without an
   * outcome (not a retry): a duplicate run, as this worker sees it.
   */
  redeliveredRuns = 0;
  /** Redeliveries of a task whose outcome was recorded already: not run again (the outcome re-sent, acked). */
  skippedFinished = 0;
  /** Runs whose outcome found another one recorded first (two runs at once: a worker declared dead that went on). */
  ranAfterRecorded = 0;

  private readonly running = new Map<string, TaskRun>();
  private readonly cancelled = new Set<string>();
  private idleWaiters: Array<() => void> = [];
  private readonly id: string;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly backoff: RetryBackoff;
  private readonly config: WorkerConfig;
  private readonly handlers: HandlerTable;
  private readonly target: OutcomeTarget;
  private readonly onTooManyAbandoned?: (abandoned: number) => void;
  private readonly mayReport: () => boolean;
  private readonly startedRuns: StartedRuns;
  private readonly router?: LaneRouter;

  constructor(options: WorkerRunsOptions) {
    this.mayReport = options.mayReport ?? (() => true);
    this.startedRuns = StartedRuns.of(options.transport, () => options.clock.now());
    this.router = options.router;
    this.id = options.workerId;
    this.transport = options.transport;
    this.clock = options.clock;
    this.logger = options.logger;
    this.backoff = options.backoff;
    this.config = options.config;
    this.handlers = options.handlers;
    this.onTooManyAbandoned = options.onTooManyAbandoned;
    this.target = {
      transport: this.transport,
      backoff: this.backoff,
      workerId: this.id,
      now: () => this.clock.now(),
    };
    if (this.transport.finishedRecord) this.target.recorded = (sent) => this.recordOutcome(sent);
  }

  get size(): number {
    return this.running.size;
  }

  /** Runs a task directly (Worker.executeTask): the handler's result, or the typed error. */
  async execute(handler: TaskHandler, options: ExecuteOptions): Promise<unknown> {
    const taskId = options.taskId ?? newId("task");
    const timeoutMs =
      options.timeoutMs === undefined
        ? this.config.taskTimeoutMs
        : checked("executeTask() timeoutMs", options.timeoutMs, wholeMsIn(1));
    const run = new TaskRun(taskId, options.taskType, 1, this.id, options.metadata ?? {}, [], {});
    options.signal?.addEventListener("abort", () => run.abort(new TaskCancelledError(taskId)), {
      once: true,
    });
    this.begin(taskId, run);
    const outcome = await run.run(handler, options.data, timeoutMs, this.clock);
    this.noteAbandoned(run);
    this.end(taskId, outcome.kind === "completed" ? "completed" : "failed");
    switch (outcome.kind) {
      case "completed":
        return outcome.result;
      case "timeout":
        throw new TaskTimeoutError(taskId, timeoutMs);
      case "failed":
        throw new TaskFailedError(taskId, outcome.error, 1);
      default:
        throw new TaskCancelledError(taskId);
    }
  }

  /** Takes one delivery from the queue through to its settlement. */
  async process(delivery: Delivery): Promise<void> {
    let task: TaskEnvelope;
    try {
      task = decodeTask(delivery.body);
    } catch (error) {
      this.malformedMessages++;
      const reason = error instanceof MalformedMessageError ? error.message : describeThrown(error);
      this.logger.warn({ queue: delivery.queue, reason }, "malformed task message dead-lettered");
      await delivery.deadLetter(reason);
      return;
    }
    const handler = this.handlers.get(task.type);
    const prior = task.priorAttempts ?? 0;
    if (!handler || (task.tags.length > 0 && !this.hasTags(task.tags))) {
      // Not ours (a lane carries every type): to the workers that serve it (src/lane-router.ts).
      if (this.router) await this.router.forward(delivery, task, prior);
      else await delivery.nack({ delayMs: 1000 });
      return;
    }
    const attempt = delivery.deliveryCount + prior;
    const again = this.startedRuns.startedBefore(task.id);
    if (
      (attempt > 1 || again || this.startedRuns.afterReconnect) &&
      (await this.finishedBefore(task, delivery, attempt, again))
    )
      return;
    const at = this.clock.now();
    if (this.cancelled.has(task.id)) {
      await publishTaskEvent(this.transport, task, {
        kind: "cancelled",
        taskId: task.id,
        at,
        attempt,
        workerId: this.id,
      });
      await delivery.ack();
      return;
    }
    const poison = poisonError(attempt, task.retries, this.config.maxRedeliveries);
    if (poison !== undefined) {
      const event = {
        kind: "failed",
        taskId: task.id,
        at,
        attempt,
        workerId: this.id,
        error: poison,
      } as const;
      await publishTaskEvent(this.transport, task, event);
      await delivery.deadLetter(poison);
      return;
    }
    const run = new TaskRun(
      task.id,
      task.type,
      attempt,
      this.id,
      task.metadata,
      task.tags,
      task.headers,
      delivery,
    );
    this.begin(task.id, run);
    // Not awaited: the handler starts at once; the outcome event follows it in the same ordered stream.
    // (A failure to send it shows up on the outcome's event, which goes out in the same stream.)
    const started: TaskEventInput = {
      v: 1,
      kind: "started",
      taskId: task.id,
      at,
      attempt,
      workerId: this.id,
    };
    const handle = this.transport.deliveryRelease?.()?.handleOf(delivery);
    if (handle !== undefined) started.release = handle; // a coordinator can send it back if we die
    queueTaskEvent(this.transport, task, started);
    const timeoutMs = task.timeoutMs > 0 ? task.timeoutMs : this.config.taskTimeoutMs;
    const outcome = await run.run(handler, task.data, timeoutMs, this.clock);
    if (outcome.kind !== "abandoned" && !this.mayReport()) {
      this.end(task.id, "abandoned"); // fenced: the cluster may have given the task to another worker
      return;
    }
    this.noteAbandoned(run);
    try {
      const sent = await settleOutcome(this.target, delivery, task, attempt, outcome, this.clock.now() - at);
      const kind = sent?.kind;
      this.end(task.id, kind === "completed" ? "completed" : kind === undefined ? "abandoned" : "failed");
    } catch (error) {
      this.end(task.id, "abandoned");
      await delivery.nack().catch(() => {});
      throw error;
    }
  }

  /**
   * A delivery that may have run before (delivery count > 1, a task this process started before,
   * or any delivery shortly after a reconnect): true when its task's outcome is recorded
   * already, so its handler must not run again (the outcome is sent again for a client that may
   * have missed it, the delivery acked). Otherwise counts it as a duplicate run unless it is a
   * retry: known from the record, or, without one, from the task's retries (a task that has
   * retries and no record: not counted within its attempts).
   */
  private async finishedBefore(
    task: TaskEnvelope,
    delivery: Delivery,
    attempt: number,
    startedHere: boolean,
  ): Promise<boolean> {
    let known: Awaited<ReturnType<FinishedRecord["lookup"]>> = null;
    const record = this.record;
    if (record) {
      try {
        known = await record.lookup(task.id);
      } catch (error) {
        this.logger.warn(
          { taskId: task.id, reason: describeThrown(error) },
          "could not read the record of finished tasks; running the redelivered task",
        );
      }
    }
    if (known?.outcome) {
      this.skippedFinished++;
      try {
        const event = JSON.parse(new TextDecoder().decode(known.outcome)) as TaskEventInput;
        await publishTaskEvent(this.transport, task, event);
      } catch (error) {
        this.logger.warn(
          { taskId: task.id, reason: describeThrown(error) },
          "could not re-send a recorded outcome",
        );
      }
      await delivery.ack();
      return true;
    }
    if (attempt === 1) {
      // A first delivery (checked after a reconnect, or started here before): a re-run only if it did run here.
      if (startedHere) this.redeliveredRuns++;
      return false;
    }
    const retry = known !== null ? known.retriedAttempt >= attempt - 1 : undefined;
    if (retry === false || (retry === undefined && (record !== undefined || task.retries === 0))) {
      this.redeliveredRuns++;
    } else if (retry === undefined && attempt > task.retries + 1) {
      this.redeliveredRuns++; // past its attempts: a redelivery whatever happened before
    }
    return false;
  }

  /** Records an outcome (or a retry) once it was reported; counts a run that came after another's. */
  private recordOutcome(sent: TaskEvent): void {
    const record = this.record;
    if (!record) return;
    if (sent.kind !== "retrying" && record.noteOutcome) {
      try {
        record.noteOutcome(sent.taskId, new TextEncoder().encode(JSON.stringify(sent)));
      } catch {
        // not connected: the task is simply not recorded
      }
      return;
    }
    const write =
      sent.kind === "retrying"
        ? record.recordRetry(sent.taskId, sent.attempt ?? 1)
        : record.recordOutcome(sent.taskId, new TextEncoder().encode(JSON.stringify(sent))).then((first) => {
            if (!first) this.ranAfterRecorded++;
          });
    write.catch((error: unknown) =>
      this.logger.debug?.(
        { taskId: sent.taskId, reason: describeThrown(error) },
        "could not record a finished task (a redelivery of it would run again)",
      ),
    );
  }

  /** The transport's record of finished tasks, if it keeps one (looked up each time: a URL transport has it once connected). */
  private get record(): FinishedRecord | undefined {
    return this.transport.finishedRecord?.();
  }

  /** Whether this worker carries every one of `tags`. */
  private hasTags(tags: readonly string[]): boolean {
    const own = this.config.tags;
    for (const tag of tags) if (!own.includes(tag)) return false;
    return true;
  }

  /** Counts a run whose handler goes on after its outcome, until it returns. */
  private noteAbandoned(run: TaskRun): void {
    if (!run.handlerRunning) return;
    this.abandonedHandlers++;
    this.totalAbandoned++;
    run.whenHandlerSettles(() => {
      this.abandonedHandlers--;
    });
    if (this.abandonedHandlers > this.config.maxAbandonedHandlers) {
      this.onTooManyAbandoned?.(this.abandonedHandlers);
    }
  }

  private begin(taskId: string, run: TaskRun): void {
    this.running.set(taskId, run);
  }

  private end(taskId: string, how: "completed" | "failed" | "abandoned"): void {
    if (!this.running.delete(taskId)) return;
    if (how === "completed") this.totalCompleted++;
    else if (how === "failed") this.totalFailed++;
    if (this.running.size === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Cancels tasks by id: those running are aborted, those delivered later are dropped. */
  cancel(taskIds: readonly string[]): void {
    for (const id of taskIds) {
      this.cancelled.add(id);
      if (this.cancelled.size > CANCELLED_MEMORY) {
        const oldest = this.cancelled.values().next().value;
        if (oldest !== undefined) this.cancelled.delete(oldest);
      }
      this.running.get(id)?.abort(new TaskCancelledError(id));
    }
  }

  /** Aborts every running task (their deliveries are left for redelivery). */
  abortAll(reason: Error): void {
    for (const run of this.running.values()) run.abort(reason);
  }

  /** Tells the broker the running tasks are still in progress. */
  touch(): void {
    for (const run of this.running.values()) void run.touch().catch(() => {});
  }

  /** Resolves when no task runs, or after timeoutMs. */
  waitIdle(timeoutMs: number): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        this.clock.clearTimeout(timer);
        resolve();
      });
    });
  }
}
