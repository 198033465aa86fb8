/**
 * A Worker runs tasks. It consumes its queue's shared lane and its profile's lane (src/names.ts),
 * moves the tasks it does not serve to those who do (src/lane-router.ts), runs the others, at most
 * `maxConcurrentTasks` at once, and reports every outcome on
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
import { WorkerFence } from "./cluster/worker-fence.js";
import { decodeControl, encode, MAX_CONTROL_LIST, type WorkerEvent, type WorkerEventKind } from "./codec.js";
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
import {
  ConfigError,
  ConnectionError,
  describeThrown,
  LifecycleHookError,
  NoHandlerError,
  StateError,
} from "./errors.js";
import { eventPublisherFor } from "./event-publisher.js";
import { enableLifecycleEvents } from "./events/task-lifecycle.js";
import { type HandlerRegistrar, HandlerTable } from "./handlers.js";
import { newId } from "./ids.js";
import { KeepAlive } from "./keep-alive.js";
import { LaneRouter } from "./lane-router.js";

import { childLogger, getDefaultLogger, type Logger } from "./logger.js";
import { assertQueueName, queuesServedBy, subjects } from "./names.js";
import { AbandonedRun } from "./task-runner.js";
import type { TaskHandler, WorkerInfo, WorkerStatus } from "./types.js";
import { type ExecuteOptions, WorkerRuns } from "./worker-runs.js";

/** Earlier profile lanes a worker keeps consuming at most (handlers registered after start). */
const MAX_PAST_LANES = 16;

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
  /** This worker's profile lane (the second of the queues it consumes), once it consumes. */
  private ownLane?: string;
  /** The profile lanes it consumed since it started (its handlers changed). */
  private readonly pastLanes: string[] = [];
  private readonly router: LaneRouter;
  private stopProgress?: () => void;
  private startedAt = 0;
  private readonly fence: WorkerFence;
  /** start() under way (shared by concurrent calls). */
  private starting?: Promise<void>;
  /** The shutdown under way or done (one, whichever path began it). */
  private ending?: Promise<void>;
  private exitReason: WorkerExit = { workerId: "", reason: "normal", abnormal: false };
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
          reportFailure: (_, { error }) => void this.end(error, true),
        },
      }),
      { input: { heartbeatIntervalMs: this.config.heartbeatIntervalMs }, clock: xstateClock(this.clock) },
    );
    this.actor.start(); // rests in "created" until start()
    this.fence = new WorkerFence({
      clock: this.clock,
      config: this.config,
      logger: this.logger,
      terminate: (reason) => void this.terminate(reason),
    });
    this.router = new LaneRouter({
      transport: this.transport,
      queue: this.queueName,
      ownLane: () => this.ownLane,
      clock: this.clock,
      logger: this.logger,
    });
    this.runs = new WorkerRuns({
      workerId: this.id,
      transport: this.transport,
      clock: this.clock,
      logger: this.logger,
      backoff: this.backoff,
      config: this.config,
      handlers: this.handlers,
      onTooManyAbandoned: (n) => void this.leaveOverloaded(n),
      mayReport: () => this.fence.mayReport(),
      router: this.router,
    });
    this.handlers.onRegister(() => {
      if (this.takingWork) this.refreshConsumer();
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
      if (this.actor.getSnapshot().matches("running")) this.startEntities();
      return this;
    }
    registerActor(this, instance, {
      owner: `Worker ${this.id}`,
      handlers: this.handlers,
      started: !this.actor.getSnapshot().matches("created"),
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
      lastHeartbeat: this.fence.lastHeartbeat,
      startedAt: this.startedAt,
      pid: process.pid,
      hostname: hostname(),
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
      abandonedHandlers: this.runs.abandonedHandlers,
      totalAbandoned: this.runs.totalAbandoned,
      redeliveredRuns: this.runs.redeliveredRuns,
      skippedFinished: this.runs.skippedFinished,
      ranAfterRecorded: this.runs.ranAfterRecorded,
    };
    if (this.poolId !== undefined) info.poolId = this.poolId;
    if (this.ownLane !== undefined) info.lane = this.ownLane;
    return info;
  }

  /** Starting or running, not draining or stopping: consuming work queues. */
  private get takingWork(): boolean {
    const snapshot = this.actor.getSnapshot();
    return snapshot.matches("starting") || snapshot.matches({ running: { mode: "accepting" } });
  }

  async start(): Promise<void> {
    const snapshot = this.actor.getSnapshot();
    if (snapshot.matches("starting")) return this.starting;
    if (snapshot.matches("running")) return;
    if (!snapshot.matches("created")) {
      throw new StateError(
        `Worker ${this.id} was stopped; a stopped worker cannot restart. Create a new Worker.`,
      );
    }
    this.actor.send({ type: "START" });
    this.starting = this.run();
    return this.starting;
  }

  private async run(): Promise<void> {
    this.keepAlive.take();
    try {
      await runActorHooks(this, "start", `Worker ${this.id}`);
      await this.transport.connect();
      const lifecycle = this.config.lifecycleEvents;
      if (lifecycle !== "off") enableLifecycleEvents(this.transport, lifecycle, this.logger);
      this.subscriptions.push(
        await this.transport.subscribe(subjects.control, (m) => this.onControl(m.body)),
      );
      this.startedAt = this.clock.now();
      this.refreshConsumer();
      await this.consumerChange;
      await this.entityRuntime?.start();
      if (this.transport.ackDeadlineMs !== undefined) {
        const interval = Math.max(100, Math.floor(this.transport.ackDeadlineMs / 3));
        this.stopProgress = every(this.clock, interval, () => this.runs.touch());
      }
      this.actor.send({ type: "STARTED" });
    } catch (error) {
      this.actor.send({ type: "START_FAILED", error: describeThrown(error) });
      await this.releaseResources();
      this.keepAlive.release();
      // A configuration mistake (no state store for entities, say) stays one: the CLI exits 2 for it.
      if (
        error instanceof ConnectionError ||
        error instanceof LifecycleHookError ||
        error instanceof ConfigError
      )
        throw error;
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
    if (!this.actor.getSnapshot().matches({ running: { mode: "accepting" } })) {
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
    if (this.actor.getSnapshot().matches("created")) {
      this.actor.send({ type: "STOP" });
      return;
    }
    if (this.actor.getSnapshot().matches("starting")) await this.starting?.catch(() => {}); // it first
    if (!this.actor.getSnapshot().matches("running")) return this.whenStopped();
    this.consumer?.setConcurrency(0);
    if (options.graceful ?? true) {
      this.actor.send({ type: "DRAIN" });
      await this.runs.waitIdle(this.config.gracefulShutdownTimeoutMs);
      if (!this.actor.getSnapshot().matches("running")) return this.whenStopped(); // it failed meanwhile
    }
    this.actor.send({ type: "STOP" });
    await this.end("normal", false);
    await runActorHooks(this, "stop", `Worker ${this.id}`);
  }

  /**
   * Ends the worker at once as if it had crashed (used when it was declared dead, or noticed it
   * was stalled): running tasks are abandoned and redelivered, the status becomes "error", and
   * `exit` is abnormal, so its supervisor replaces it.
   */
  async terminate(reason: string): Promise<void> {
    const snapshot = this.actor.getSnapshot();
    if (snapshot.matches("running") || snapshot.matches("stopping")) {
      this.actor.send({ type: "FAIL", error: reason }); // reportFailure → end(reason, true)
    }
    return this.whenStopped();
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
    if (!this.actor.getSnapshot().matches({ running: { mode: "accepting" } })) return;
    this.logger.warn(
      { abandonedHandlers: abandoned, maxAbandonedHandlers: this.config.maxAbandonedHandlers },
      "too many handlers ignore ctx.signal and still run after their timeout or cancellation; " +
        "this worker takes no more tasks and will be replaced",
    );
    this.consumer?.setConcurrency(0);
    this.actor.send({ type: "DRAIN" });
    await this.runs.waitIdle(this.config.gracefulShutdownTimeoutMs);
    await this.terminate(
      `${abandoned} handlers still running after their timeout or cancellation (over maxAbandonedHandlers ` +
        `${this.config.maxAbandonedHandlers}); make handlers stop when ctx.signal aborts`,
    );
  }

  private whenStopped(): Promise<void> {
    return this.ending ?? Promise.resolve();
  }

  /**
   * Shuts down once, whichever path asked first (a stop, a failure, or both: a failure during a
   * stop makes the exit abnormal), then emits `exit`.
   */
  private end(reason: string, abnormal: boolean): Promise<void> {
    if (abnormal && !this.exitReason.abnormal) this.exitReason = { workerId: this.id, reason, abnormal };
    this.ending ??= this.shutdown();
    return this.ending;
  }

  private async shutdown(): Promise<void> {
    await this.entityRuntime?.stop(!this.exitReason.abnormal).catch((error: unknown) => {
      this.logger.warn({ err: describeThrown(error) }, "error while handing entities over");
    });
    await this.releaseResources();
    if (!this.exitReason.abnormal) await this.announce("stopped");
    if (this.actor.getSnapshot().matches("stopping")) this.actor.send({ type: "STOPPED" });
    this.actor.stop();
    if (this.ownsTransport) await this.transport.close();
    this.keepAlive.release();
    this.emit("exit", { ...this.exitReason, workerId: this.id });
  }

  /** Abandons running tasks (their deliveries go back), stops consuming and listening. */
  private async releaseResources(): Promise<void> {
    this.runs.abortAll(new AbandonedRun());
    this.stopProgress?.();
    await this.consumerChange;
    await this.consumer?.stop().catch(() => {});
    this.consumer = undefined;
    for (const sub of this.subscriptions.splice(0)) await sub.unsubscribe().catch(() => {});
    await this.router.stop();
  }

  private refreshConsumer(): void {
    this.consumerChange = this.consumerChange.then(async () => {
      if (!this.takingWork) return;
      const queues = queuesServedBy(this.queueName, this.handlers.types, this.config.tags);
      // Handlers are only ever added: the lanes of its earlier profiles hold nothing it cannot run,
      // and tasks may have been moved there while it had them.
      for (const lane of this.pastLanes) if (!queues.includes(lane)) queues.push(lane);
      if (
        queues[1] !== undefined &&
        !this.pastLanes.includes(queues[1]) &&
        this.pastLanes.length < MAX_PAST_LANES
      )
        this.pastLanes.push(queues[1]);
      const key = queues.join(",");
      if (key === this.consumedQueues) return;
      const previous = this.consumer;
      this.consumer = undefined;
      await previous?.stop();
      this.consumedQueues = key;
      this.ownLane = queues[1];
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
    else if (command.kind === "fence" && command.workerIds.includes(this.id))
      this.fenced(command.released ?? []);
  }

  private async announce(kind: WorkerEventKind): Promise<void> {
    if (this.transport.state === "closed") return;
    if (kind === "heartbeat" && !this.fence.beat()) return; // stalled: it is leaving
    try {
      const event: WorkerEvent = { v: 1, kind, info: this.info };
      const release = this.transport.deliveryRelease?.();
      if (release && this.consumer && kind === "heartbeat") {
        event.held = release.heldBy(this.consumer).slice(0, MAX_CONTROL_LIST);
      }
      const body = encode(event, this.transport.maxPayloadBytes, "worker event");
      await this.transport.publish(subjects.workerEvents, body);
    } catch (error) {
      this.logger.warn({ err: describeThrown(error), kind }, "could not publish a worker event");
    }
  }

  /** A coordinator declared this worker dead (control "fence"). */
  private fenced(released: readonly string[]): void {
    this.fence.fence(() => {
      const release = this.transport.deliveryRelease?.();
      if (release && this.consumer && released.length > 0) release.forget(this.consumer, new Set(released));
    });
  }
}

/** Adapts our Clock to the one XState's createActor takes. */
export function xstateClock(clock: Clock) {
  return {
    setTimeout: (fn: (...args: unknown[]) => void, ms: number) => clock.setTimeout(() => fn(), ms),
    clearTimeout: (handle: unknown) => clock.clearTimeout(handle as ReturnType<Clock["setTimeout"]>),
  };
}
