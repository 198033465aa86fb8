/**
 * A Worker runs tasks. It consumes the work queues of the task types it has handlers for (and of
 * each subset of its tags), at most `maxConcurrentTasks` at once, and reports every outcome on
 * the transport before acknowledging the delivery. Its lifecycle is the worker machine
 * (actors/worker.machine.ts); this class provides the machine's side effects.
 */
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import { type Actor, createActor } from "xstate";
import { type WorkerMachineEvent, workerMachine, workerStatusOf } from "../actors/worker.machine.js";
import { InMemoryTransport } from "../transports/memory/memory.transport.js";
import type { Consumer, Delivery, Subscription, Transport } from "../transports/transport.js";
import { type Clock, every, systemClock } from "./clock.js";
import { decodeControl, encode, type WorkerEventKind } from "./codec.js";
import {
  DEFAULT_RETRY_BACKOFF,
  type RetryBackoff,
  resolveWorkerConfig,
  validateKeys,
  type WorkerConfig,
} from "./config.js";
import { registerActor, runActorHooks } from "./decorators/actor-explorer.js";
import { type EntitiesOptions, entityToRegister, resolveEntitiesOptions } from "./entities/entity-hosting.js";
import { EntityRuntime } from "./entities/entity-runtime.js";
import { ConnectionError, describeThrown, LifecycleHookError, NoHandlerError, StateError } from "./errors.js";
import { eventPublisherFor } from "./event-publisher.js";
import { enableLifecycleEvents } from "./events/task-lifecycle.js";
import { type HandlerRegistrar, HandlerTable } from "./handlers.js";
import { newId } from "./ids.js";
import { KeepAlive } from "./keep-alive.js";
import { childLogger, getDefaultLogger, type Logger } from "./logger.js";
import { assertQueueName, queuesServedBy, subjects } from "./names.js";
import { AbandonedRun } from "./task-runner.js";
import type { TaskHandler, WorkerInfo, WorkerStatus } from "./types.js";
import { type ExecuteOptions, WorkerRuns } from "./worker-runs.js";

export interface WorkerOptions {
  id?: string;
  transport?: Transport;
  config?: Partial<WorkerConfig>;
  /** The TaskQueue (by name) this worker takes tasks from. Default "default". */
  queueName?: string;
  clock?: Clock;
  logger?: Logger;
  retryBackoff?: Partial<RetryBackoff>;
  /** Set by WorkerPool. */
  poolId?: string;
  /** Entity hosting: state store, event sink, failover time (see README, "Entities"). */
  entities?: EntitiesOptions;
  /** Whether the started worker keeps the process alive until stop() (default true; src/keep-alive.ts). */
  keepAlive?: boolean;
}

export interface WorkerExit {
  workerId: string;
  /** "normal" after stop(); otherwise what went wrong. */
  reason: string;
  abnormal: boolean;
}

interface WorkerEvents {
  exit: [WorkerExit];
}

export class Worker extends EventEmitter<WorkerEvents> {
  readonly id: string;
  readonly config: WorkerConfig;
  readonly queueName: string;
  readonly poolId?: string;
  /** Messages on a task queue that could not be decoded (dead-lettered). */
  get malformedMessages(): number {
    return this.runs.malformedMessages;
  }

  private readonly handlers = new HandlerTable();
  /** The config the user gave (what an @Actor registered here may not override). */
  private readonly givenConfig?: Partial<WorkerConfig>;
  private readonly transport: Transport;
  private readonly ownsTransport: boolean;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly backoff: RetryBackoff;
  private readonly actor: Actor<typeof workerMachine>;
  private readonly runs: WorkerRuns;
  private readonly subscriptions: Subscription[] = [];
  private consumer?: Consumer;
  private consumedQueues = "";
  private stopProgress?: () => void;
  private startedAt = 0;
  private lastHeartbeat = 0;
  private lifecycle: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  private consumerChange: Promise<void> = Promise.resolve();
  private readonly entityOptions: EntitiesOptions;
  private entityRuntime?: EntityRuntime;
  private readonly keepAlive: KeepAlive;

  constructor(options: WorkerOptions = {}) {
    super();
    validateKeys("WorkerOptions", options, [
      "id",
      "transport",
      "config",
      "queueName",
      "clock",
      "logger",
      "retryBackoff",
      "poolId",
      "entities",
      "keepAlive",
    ]);
    this.entityOptions = resolveEntitiesOptions(options.entities, "WorkerOptions");
    this.id = options.id ?? newId("worker");
    this.config = resolveWorkerConfig(options.config);
    this.givenConfig = options.config;
    this.queueName = options.queueName ?? "default";
    assertQueueName(this.queueName);
    this.poolId = options.poolId;
    this.keepAlive = new KeepAlive(options.keepAlive);
    this.clock = options.clock ?? systemClock;
    this.ownsTransport = options.transport === undefined;
    this.transport = options.transport ?? new InMemoryTransport({ clock: this.clock });
    this.logger = childLogger(options.logger ?? getDefaultLogger(), { workerId: this.id });
    this.backoff = { ...DEFAULT_RETRY_BACKOFF, ...options.retryBackoff };
    this.actor = createActor(
      workerMachine.provide({
        actions: {
          sendHeartbeat: () => void this.announce("heartbeat"),
          announceDraining: () => void this.announce("draining"),
        },
      }),
      { input: { heartbeatIntervalMs: this.config.heartbeatIntervalMs }, clock: xstateClock(this.clock) },
    );
    this.runs = new WorkerRuns({
      workerId: this.id,
      transport: this.transport,
      clock: this.clock,
      logger: this.logger,
      backoff: this.backoff,
      config: this.config,
      handlers: this.handlers,
      onTooManyAbandoned: (n) => void this.leaveOverloaded(n),
    });
    this.handlers.onRegister(() => {
      if (this.lifecycle === "running") this.refreshConsumer();
    });
  }

  /** `handler(type, fn)` registers fn; `handler(type)` returns a registrar / method decorator. */
  handler(type: string, fn: TaskHandler): TaskHandler;
  handler(type: string): HandlerRegistrar;
  handler(type: string, fn?: TaskHandler): TaskHandler | HandlerRegistrar {
    return this.handlers.handlerApi(type, fn, "Worker.handler()");
  }

  registerHandler(type: string, fn: TaskHandler): void {
    this.handlers.register(type, fn, "Worker.registerHandler()");
  }

  /** Registers the @Handler methods of an @Actor instance (rules: src/decorators/actor-explorer.ts). */
  register(instance: object): this {
    const entity = entityToRegister(instance, `Worker ${this.id}`);
    if (entity) {
      this.entities.register(entity, `Worker ${this.id}.register()`);
      if (this.lifecycle === "running") this.startEntities();
      return this;
    }
    registerActor(this, instance, {
      owner: `Worker ${this.id}`,
      handlers: this.handlers,
      started: this.lifecycle !== "new",
      settings: this.config,
      given: this.givenConfig,
    });
    return this;
  }

  /** The entities this worker holds (created on the first entity type registered). */
  private get entities(): EntityRuntime {
    this.entityRuntime ??= new EntityRuntime({
      holder: this.id,
      transport: this.transport,
      clock: this.clock,
      logger: this.logger,
      store: this.entityOptions.stateStore,
      events: this.entityOptions.events,
      failoverMs: this.entityOptions.failoverMs,
    });
    return this.entityRuntime;
  }

  /** Entity types registered here and what their hosts did (for stats and dashboards). */
  get entityStats() {
    return this.entityRuntime?.stats ?? [];
  }

  private startEntities(): void {
    this.entityRuntime?.start().catch((error: unknown) => {
      this.logger.error({ err: describeThrown(error) }, "could not start holding entities");
    });
  }

  /** Task types this worker has handlers for. */
  get types(): string[] {
    return this.handlers.types;
  }

  get status(): WorkerStatus {
    // The machine decides idle ⇄ busy; it is told the task count when someone looks (a status
    // read, a heartbeat), not on every task, which keeps it off the hot path.
    const snapshot = this.actor.getSnapshot();
    const busy = snapshot.matches({ running: { activity: "busy" } });
    if (snapshot.matches("running") && busy !== this.runs.size > 0) {
      this.tell({ type: "TASKS_CHANGED", currentTasks: this.runs.size });
    }
    return workerStatusOf(this.actor.getSnapshot());
  }

  get info(): WorkerInfo {
    const status = this.status;
    const now = this.clock.now();
    const info: WorkerInfo = {
      id: this.id,
      status,
      currentTasks: this.runs.size,
      maxConcurrentTasks: this.config.maxConcurrentTasks,
      totalCompleted: this.runs.totalCompleted,
      totalFailed: this.runs.totalFailed,
      uptimeSeconds: this.startedAt === 0 ? 0 : Math.max(0, (now - this.startedAt) / 1000),
      isAvailable:
        (status === "idle" || status === "busy") && this.runs.size < this.config.maxConcurrentTasks,
      tags: [...this.config.tags],
      types: this.handlers.types,
      lastHeartbeat: this.lastHeartbeat,
      startedAt: this.startedAt,
      pid: process.pid,
      hostname: hostname(),
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
      abandonedHandlers: this.runs.abandonedHandlers,
      totalAbandoned: this.runs.totalAbandoned,
    };
    if (this.poolId !== undefined) info.poolId = this.poolId;
    return info;
  }

  async start(): Promise<void> {
    if (this.lifecycle === "running" || this.lifecycle === "starting") return;
    if (this.lifecycle !== "new") {
      throw new StateError(
        `Worker ${this.id} was stopped; a stopped worker cannot restart. Create a new Worker.`,
      );
    }
    this.lifecycle = "starting";
    this.keepAlive.take();
    this.actor.start();
    this.actor.send({ type: "START" });
    try {
      await runActorHooks(this, "start", `Worker ${this.id}`);
      await this.transport.connect();
      const lifecycle = this.config.lifecycleEvents;
      if (lifecycle !== "off") enableLifecycleEvents(this.transport, lifecycle, this.logger);
      this.subscriptions.push(
        await this.transport.subscribe(subjects.control, (m) => this.onControl(m.body)),
      );
      this.startedAt = this.clock.now();
      this.lifecycle = "running";
      this.refreshConsumer();
      await this.consumerChange;
      await this.entityRuntime?.start();
      if (this.transport.ackDeadlineMs !== undefined) {
        const interval = Math.max(100, Math.floor(this.transport.ackDeadlineMs / 3));
        this.stopProgress = every(this.clock, interval, () => this.runs.touch());
      }
      this.actor.send({ type: "STARTED" });
    } catch (error) {
      this.lifecycle = "stopped";
      this.keepAlive.release();
      this.actor.send({ type: "START_FAILED", error: describeThrown(error) });
      if (error instanceof ConnectionError || error instanceof LifecycleHookError) throw error;
      throw new ConnectionError(`Worker ${this.id} could not start: ${describeThrown(error)}`, {
        cause: error,
      });
    }
  }

  /**
   * Runs a task here and now, without a queue. Resolves with the handler's result; rejects with
   * TaskFailedError, TaskTimeoutError or TaskCancelledError (when the worker stops under it).
   */
  async executeTask(options: ExecuteOptions): Promise<unknown> {
    const handler = this.handlers.get(options.taskType);
    if (!handler) throw new NoHandlerError(options.taskType, this.handlers.types);
    if (this.lifecycle !== "running" || this.status === "draining") {
      throw new StateError(`Worker ${this.id} is ${this.status}; call start() before executeTask().`);
    }
    return this.runs.execute(handler, options);
  }

  /**
   * Stops the worker. Graceful (the default): no new tasks, running ones finish (up to
   * gracefulShutdownTimeoutMs, then they are abandoned and redelivered elsewhere). Not graceful:
   * running tasks are aborted at once and go back to the queue.
   */
  async stop(options: { graceful?: boolean } = {}): Promise<void> {
    if (this.lifecycle === "stopped" || this.lifecycle === "stopping") return this.whenStopped();
    if (this.lifecycle === "new") {
      this.lifecycle = "stopped";
      return;
    }
    this.lifecycle = "stopping";
    const graceful = options.graceful ?? true;
    this.consumer?.setConcurrency(0);
    if (graceful) {
      this.actor.send({ type: "DRAIN" });
      await this.runs.waitIdle(this.config.gracefulShutdownTimeoutMs);
    }
    await this.shutdown("normal", false);
    await runActorHooks(this, "stop", `Worker ${this.id}`);
  }

  /**
   * Ends the worker at once as if it had crashed (used when its heartbeats stopped): running
   * tasks are abandoned and redelivered, the status becomes "error", and `exit` is abnormal.
   */
  async terminate(reason: string): Promise<void> {
    if (this.lifecycle === "stopped") return;
    this.lifecycle = "stopping";
    await this.shutdown(reason, true);
  }

  /** Handlers still running after their task's outcome (they ignored ctx.signal). */
  get abandonedHandlers(): number {
    return this.runs.abandonedHandlers;
  }

  /**
   * More handlers than maxAbandonedHandlers run abandoned: this worker takes no more tasks, lets
   * its running ones finish (up to gracefulShutdownTimeoutMs), then ends abnormally, so that its
   * pool's supervisor replaces it (within the restart intensity). The abandoned handlers cannot be
   * stopped from outside: they end when they return, or with the process.
   */
  private async leaveOverloaded(abandoned: number): Promise<void> {
    if (this.lifecycle !== "running") return;
    this.lifecycle = "stopping";
    this.logger.warn(
      { abandonedHandlers: abandoned, maxAbandonedHandlers: this.config.maxAbandonedHandlers },
      "too many handlers ignore ctx.signal and still run after their timeout or cancellation; " +
        "this worker takes no more tasks and will be replaced",
    );
    this.consumer?.setConcurrency(0);
    await this.runs.waitIdle(this.config.gracefulShutdownTimeoutMs);
    if (this.stoppedPromise) return; // stopped or terminated meanwhile
    await this.shutdown(
      `${abandoned} handlers still running after their timeout or cancellation (over maxAbandonedHandlers ` +
        `${this.config.maxAbandonedHandlers}); make handlers stop when ctx.signal aborts`,
      true,
    );
  }

  private stoppedPromise?: Promise<void>;
  private whenStopped(): Promise<void> {
    return this.stoppedPromise ?? Promise.resolve();
  }

  private async shutdown(reason: string, abnormal: boolean): Promise<void> {
    let done!: () => void;
    this.stoppedPromise = new Promise<void>((r) => {
      done = r;
    });
    await this.entityRuntime?.stop(!abnormal).catch((error: unknown) => {
      this.logger.warn({ err: describeThrown(error) }, "error while handing entities over");
    });
    this.runs.abortAll(new AbandonedRun());
    this.stopProgress?.();
    await this.consumerChange;
    await this.consumer?.stop().catch(() => {});
    this.consumer = undefined;
    for (const sub of this.subscriptions.splice(0)) await sub.unsubscribe().catch(() => {});
    if (abnormal) this.actor.send({ type: "FAIL", error: reason });
    else await this.announce("stopped");
    this.actor.send({ type: "STOPPED" });
    this.actor.stop();
    this.lifecycle = "stopped";
    if (this.ownsTransport) await this.transport.close();
    this.keepAlive.release();
    this.emit("exit", { workerId: this.id, reason, abnormal });
    done();
  }

  private refreshConsumer(): void {
    this.consumerChange = this.consumerChange.then(async () => {
      if (this.lifecycle !== "running") return;
      const queues = queuesServedBy(this.queueName, this.handlers.types, this.config.tags);
      const key = queues.join(",");
      if (key === this.consumedQueues) return;
      const previous = this.consumer;
      this.consumer = undefined;
      await previous?.stop();
      this.consumedQueues = key;
      if (queues.length === 0) return;
      this.consumer = await this.transport.consume(queues, (d) => this.onDelivery(d), {
        concurrency: this.config.maxConcurrentTasks,
      });
    });
  }

  private onDelivery(delivery: Delivery): void {
    this.runs.process(delivery).catch(this.onSettleError);
  }

  private readonly onSettleError = (error: unknown): void => {
    this.logger.error(
      { err: describeThrown(error) },
      "failed to settle a delivery; it will be delivered again",
    );
  };

  /** Sends to the machine unless it already stopped (a late task end after a hard stop). */
  private tell(event: WorkerMachineEvent): void {
    if (this.actor.getSnapshot().status === "active") this.actor.send(event);
  }

  private onControl(body: Uint8Array): void {
    let command: ReturnType<typeof decodeControl>;
    try {
      command = decodeControl(body);
    } catch (error) {
      this.logger.warn({ reason: describeThrown(error) }, "ignored a malformed control command");
      return;
    }
    if (command.kind === "ping") {
      void this.announce("heartbeat");
      return;
    }
    if (command.kind === "cancel") this.runs.cancel(command.taskIds);
    else if (command.kind === "resync") eventPublisherFor(this.transport).answerResync(command);
  }

  private async announce(kind: WorkerEventKind): Promise<void> {
    if (this.transport.state === "closed") return;
    const now = this.clock.now();
    const gap = now - this.lastHeartbeat;
    if (
      kind === "heartbeat" &&
      this.lastHeartbeat > 0 &&
      gap > this.config.heartbeatIntervalMs + this.config.stallTimeoutMs
    ) {
      // This process was frozen (SIGSTOP, a stalled event loop) long enough to be declared dead: its
      // tasks already run elsewhere. Leave instead of coming back as a zombie; the pool replaces it.
      this.logger.warn(
        { stalledMs: gap },
        "worker was stalled past stallTimeoutMs; leaving, to rejoin as a new worker",
      );
      void this.terminate(`stalled for ${gap} ms (over stallTimeoutMs ${this.config.stallTimeoutMs})`);
      return;
    }
    this.lastHeartbeat = now;
    try {
      const body = encode({ v: 1, kind, info: this.info }, this.transport.maxPayloadBytes, "worker event");
      await this.transport.publish(subjects.workerEvents, body);
    } catch (error) {
      this.logger.warn({ err: describeThrown(error), kind }, "could not publish a worker event");
    }
  }
}

/** Adapts our Clock to the one XState's createActor takes. */
export function xstateClock(clock: Clock) {
  return {
    setTimeout: (fn: (...args: unknown[]) => void, ms: number) => clock.setTimeout(() => fn(), ms),
    clearTimeout: (handle: unknown) => clock.clearTimeout(handle as ReturnType<Clock["setTimeout"]>),
  };
}
