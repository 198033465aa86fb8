/**
 * The Coordinator: the seed's high-level API. It owns a TaskQueue (the client side), a
 * WorkerPool of local workers (which may be empty: then it is a pure client of workers that run
 * elsewhere), and a registry of every worker heartbeating on the transport. Its lifecycle, health
 * checks and auto-scaling decisions are the coordinator machine (actors/coordinator.machine.ts).
 */
import { EventEmitter } from "node:events";
import { type Actor, createActor } from "xstate";
import { coordinatorMachine } from "../actors/coordinator.machine.js";
import { InMemoryTransport } from "../transports/memory/memory.transport.js";
import type { Transport } from "../transports/transport.js";
import { type Clock, systemClock } from "./clock.js";
import { ClusterMembership } from "./cluster/membership.js";
import { ClusterScaler } from "./cluster-scaler.js";
import { encode } from "./codec.js";
import {
  assertLocalWorkers,
  type CoordinatorConfig,
  type CoordinatorConfigInput,
  resolveCoordinatorConfig,
  resolveWorkerConfig,
  validateKeys,
  type WorkerConfig,
} from "./config.js";
import { DeadLetterApi } from "./dead-letters/dead-letter-api.js";
import type { AnyEntityDefinition, EntityDefinition } from "./entities/define-entity.js";
import { entityDefinitionOf } from "./entities/entity.decorator.js";
import { EntityClient, readEntity } from "./entities/entity-client.js";
import { type EntitiesOptions, resolveEntitiesOptions } from "./entities/entity-hosting.js";
import type { EntityEvent, EntitySnapshot } from "./entities/entity-logic.js";
import { EntityRef } from "./entities/entity-ref.js";
import { ConfigError, describeThrown, type EscalationError, StateError } from "./errors.js";
import { EventBus } from "./events/event-bus.js";
import type { HandlerRegistrar } from "./handlers.js";
import { newId } from "./ids.js";
import { KeepAlive } from "./keep-alive.js";
import { checked, durationIn, intIn, LIMITS } from "./limits.js";
import { childLogger, getDefaultLogger, type Logger } from "./logger.js";
import { MAX_TAGS_PER_WORKER, normalizeTags, queuesServedBy, subjects } from "./names.js";
import { TransportWorkerRegistry } from "./registry.js";
import { submitAndWait } from "./submit.js";
import { PoolSupervisor } from "./supervision/pool-supervisor.js";
import { SUBMIT_KEYS, TaskQueue } from "./task-queue.js";
import { TypeAdmission } from "./type-admission.js";
import type { SubmitOptions, Task, TaskHandler, TaskResult, WaitOptions, WorkerInfo } from "./types.js";
import { xstateClock } from "./worker.js";
import { WorkerPool } from "./worker-pool.js";

export interface CoordinatorOptions {
  config?: CoordinatorConfigInput;
  /** Configuration of the workers this coordinator starts itself. */
  workerConfig?: Partial<WorkerConfig>;
  /** Default: a new InMemoryTransport. */
  transport?: Transport;
  clock?: Clock;
  logger?: Logger;
  /** Entity hosting and addressing: state store, event sink, failover time (see README, "Entities"). */
  entities?: EntitiesOptions;
  /**
   * Whether the started coordinator keeps the process alive until stop(), as a server does
   * (default true): a script awaiting a task in back-off does not exit under it (src/keep-alive.ts).
   */
  keepAlive?: boolean;
  /**
   * The task types this coordinator accepts besides its own handlers' (src/type-admission.ts).
   * Default: those a worker on the transport serves or has served since start(); a list: exactly
   * these (their tasks wait for a worker); "any": every valid name.
   */
  taskTypes?: readonly string[] | "any";
  /**
   * How long a submit of a type no known worker serves waits for one to announce itself before
   * failing with NoHandlerError (broker transports). Default 2000; 0: no wait.
   */
  typeDiscoveryMs?: number;
}

interface CoordinatorEvents {
  "worker.dead": [WorkerInfo];
  scaled: [{ from: number; to: number }];
  /** Its pool escalated and was restarted (within the restart intensity). */
  "pool.restarted": [{ poolId: string; restarts: number }];
  /**
   * The supervision tree gave up (its pool kept failing past the restart intensity): the
   * coordinator stops. Without a listener it also sets process.exitCode to 1.
   */
  escalated: [EscalationError];
}

export class Coordinator extends EventEmitter<CoordinatorEvents> {
  readonly config: CoordinatorConfig;
  readonly transport: Transport;
  readonly queue: TaskQueue;
  readonly pool: WorkerPool;
  readonly registry: TransportWorkerRegistry;
  /** The dead letters of this coordinator's queue: list, inspect, retry, delete, purge. */
  readonly deadLetters: DeadLetterApi;
  private readonly scaler: ClusterScaler;
  private readonly poolSupervisor: PoolSupervisor;
  private readonly membership: ClusterMembership;
  /** A transport it created itself is closed by stop(); one it was given is the caller's. */
  private readonly ownsTransport: boolean;

  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly actor: Actor<typeof coordinatorMachine>;
  private lastDepth = 0;
  private scaleEvents = 0;
  private readonly admission: TypeAdmission;
  private stopping?: Promise<void>;
  private resolveStopped?: () => void;
  private bus?: EventBus;
  private readonly entityOptions: EntitiesOptions;
  private entityClient?: EntityClient;
  private readonly keepAlive: KeepAlive;
  /** The config of the workers it starts itself, as resolved (checked against its own at start). */
  private readonly localWorkerConfig: WorkerConfig;

  constructor(options: CoordinatorOptions = {}) {
    super();
    validateKeys("CoordinatorOptions", options, [
      "config",
      "workerConfig",
      "transport",
      "clock",
      "logger",
      "entities",
      "keepAlive",
      "taskTypes",
      "typeDiscoveryMs",
    ]);
    this.entityOptions = resolveEntitiesOptions(options.entities, "CoordinatorOptions");
    this.keepAlive = new KeepAlive(options.keepAlive);
    this.config = resolveCoordinatorConfig(options.config);
    this.localWorkerConfig = resolveWorkerConfig(options.workerConfig, "CoordinatorOptions.workerConfig");
    this.clock = options.clock ?? systemClock;
    this.ownsTransport = options.transport === undefined;
    this.transport = options.transport ?? new InMemoryTransport({ clock: this.clock });
    this.logger = childLogger(options.logger ?? getDefaultLogger(), { component: "coordinator" });
    const explicitTimeout = options.config?.defaultTimeoutMs;
    this.queue = new TaskQueue({
      name: this.config.queueName,
      maxQueueSize: this.config.maxQueueSize,
      transport: this.transport,
      clock: this.clock,
      retryBackoff: this.config.retryBackoff,
      defaultTimeoutMs:
        explicitTimeout ?? options.workerConfig?.taskTimeoutMs ?? this.config.defaultTimeoutMs,
      defaultRetries: this.config.defaultRetries,
      maxFinishedTasks: this.config.maxFinishedTasks,
    });
    this.pool = new WorkerPool({
      id: newId("local"),
      minWorkers: this.config.minWorkers,
      maxWorkers: this.config.maxWorkers,
      config: options.workerConfig,
      transport: this.transport,
      queueName: this.config.queueName,
      clock: this.clock,
      logger: this.logger,
      retryBackoff: this.config.retryBackoff,
      restartIntensity: this.config.restartIntensity,
      entities: this.entityOptions,
      keepAlive: false, // the coordinator's own hold covers its pool
    });
    this.poolSupervisor = new PoolSupervisor(this.pool, {
      intensity: this.config.restartIntensity,
      clock: this.clock,
      logger: this.logger,
      owner: "Coordinator",
    });
    this.poolSupervisor.on("restarted", (info) => this.emit("pool.restarted", info));
    this.poolSupervisor.on("escalated", (error) => this.escalate(error));
    this.registry = new TransportWorkerRegistry(this.transport, this.clock);
    this.admission = new TypeAdmission({
      handlers: this.pool.handlerTable,
      localTags: () => this.pool.workerTags,
      registry: this.registry,
      clock: this.clock,
      taskTypes: options.taskTypes,
      discoveryMs: checked(
        "CoordinatorOptions.typeDiscoveryMs",
        options.typeDiscoveryMs ?? 2000,
        durationIn(0),
      ),
    });
    this.scaler = new ClusterScaler(this.pool, this.registry, this.transport, this.config.queueName);
    this.deadLetters = new DeadLetterApi({
      transport: this.transport,
      queue: this.config.queueName,
      knownQueues: () => this.knownWorkQueues(),
      onRetried: (task) => this.queue.trackRetried(task),
      now: () => this.clock.now(),
    });
    this.membership = new ClusterMembership({
      registry: this.registry,
      transport: this.transport,
      clock: this.clock,
      logger: this.logger,
      workerTimeoutMs: this.config.workerTimeoutMs,
      isLocal: (id) => this.pool.hasWorker(id),
      onDeclaredElsewhere: (info) => this.emit("worker.dead", info),
    });
    this.actor = createActor(
      coordinatorMachine.provide({
        actions: {
          checkHealth: () => this.checkHealth(),
          sampleLoad: () => void this.sampleLoad(),
          scaleTo: (_, { workers }) => this.applyScale(workers),
          shutdown: (_, { graceful }) => void this.shutdown(graceful),
        },
      }),
      {
        input: {
          autoScale: this.config.autoScale,
          minWorkers: this.config.minWorkers,
          maxWorkers: this.config.maxWorkers,
          scaleUpThreshold: this.config.scaleUpThreshold,
          scaleDownThreshold: this.config.scaleDownThreshold,
          scaleDownDelayMs: this.config.scaleDownDelayMs,
          healthCheckIntervalMs: this.config.healthCheckIntervalMs,
          autoScaleIntervalMs: this.config.autoScaleIntervalMs,
        },
        clock: xstateClock(this.clock),
      },
    );
    this.actor.start(); // rests in "idle" until start()
  }

  /** `handler(type, fn)` registers fn; `handler(type)` returns a registrar / method decorator. */
  handler(type: string, fn: TaskHandler): TaskHandler;
  handler(type: string): HandlerRegistrar;
  handler(type: string, fn?: TaskHandler): TaskHandler | HandlerRegistrar {
    return this.pool.handlerTable.handlerApi(type, fn, "Coordinator.handler()");
  }

  registerHandler(type: string, fn: TaskHandler): void {
    this.pool.handlerTable.register(type, fn, "Coordinator.registerHandler()");
  }

  /**
   * Registers the @Handler methods of an @Actor instance on this coordinator's local workers (its
   * pool: see WorkerPool.register for how the actor's tags and maxConcurrentTasks apply).
   */
  register(instance: object): this {
    this.pool.register(instance);
    return this;
  }

  /** The event bus on this coordinator's transport (publish, subscribe, groups): see EventBus. */
  get events(): EventBus {
    this.bus ??= new EventBus({ transport: this.transport, clock: this.clock, logger: this.logger });
    return this.bus;
  }

  /**
   * A reference to the entity `id` of a type (a defineEntity definition or an @Entity class), held by
   * whichever worker holds its partition, anywhere on the transport. Nothing runs until it gets an event.
   */
  entity<TEvent extends EntityEvent, TContext, TValue>(
    target: EntityDefinition<TEvent, TContext, TValue>,
    id: string,
  ): EntityRef<TEvent, TContext, TValue>;
  entity(target: abstract new (...args: never[]) => object, id: string): EntityRef;
  entity(target: unknown, id: string): EntityRef {
    const def = entityDefinitionOf(target, "Coordinator.entity()");
    if (!def) {
      throw new ConfigError(
        "Coordinator.entity() takes an entity type: a definition from defineEntity() or a class decorated with @Entity.",
      );
    }
    return new EntityRef(this.entities, def, id);
  }

  private get entities(): EntityClient {
    this.entityClient ??= new EntityClient(this.transport, {
      store: this.entityOptions.stateStore,
      clock: this.clock,
      logger: this.logger,
    });
    return this.entityClient;
  }

  /** The entity types this coordinator's own workers hold. */
  get entityDefinitions(): AnyEntityDefinition[] {
    return this.pool.entityDefinitions;
  }

  /** The stored snapshot of an entity by type name and id (null if none), e.g. for a dashboard. */
  async readEntity(entity: string, id: string): Promise<EntitySnapshot | null> {
    const { store } = await this.entities.ready();
    return readEntity(store, entity, id);
  }

  /** "idle" | "starting" | "running" | "stopping" | "stopped". */
  get state(): string {
    const value = this.actor.getSnapshot().value;
    return typeof value === "string" ? value : "running";
  }

  async start(): Promise<void> {
    const snapshot = this.actor.getSnapshot();
    if (snapshot.matches("running") || snapshot.matches("starting")) return;
    if (snapshot.status === "done" || snapshot.matches("stopping")) {
      throw new StateError("This Coordinator was stopped; create a new one.");
    }
    if (this.pool.handlerTable.size > 0)
      assertLocalWorkers("Coordinator", this.config, this.localWorkerConfig);
    this.actor.send({ type: "START" });
    this.keepAlive.take();
    try {
      await this.transport.connect();
      await this.registry.start();
      await this.membership.start();
      // Who holds which delivery matters only where a dead worker's deliveries can be released.
      if (this.transport.deliveryRelease?.()) this.queue.tapTaskEvents((e) => this.membership.taskEvent(e));
      // Ask every worker already on the transport to heartbeat now, so getWorkers() knows them at once.
      await this.transport.publish(
        subjects.control,
        encode({ v: 1, kind: "ping" }, this.transport.maxPayloadBytes),
      );
      await this.queue.start();
      await this.pool.start();
      this.poolSupervisor.start();
      this.actor.send({ type: "STARTED" });
    } catch (error) {
      this.keepAlive.release();
      this.actor.send({ type: "START_FAILED", error: describeThrown(error) });
      throw error;
    }
  }

  /** Submits a task and resolves with its handler's return value. */
  submit(taskType: string, data?: unknown, options: SubmitOptions = {}): Promise<unknown> {
    // Not `async`: the promise of submitAndWait is returned as is, without one more around it.
    try {
      this.assertRunning("submit");
      const admitted = this.admit(taskType, options);
      if (admitted !== undefined) return admitted.then(() => this.submit(taskType, data, options));
      return submitAndWait(
        this.queue,
        taskType,
        data,
        this.pool.handlerTable.submitOptions(taskType, options),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Submits a task and resolves once it is queued, with the Task record. */
  async submitAsync(taskType: string, data?: unknown, options: SubmitOptions = {}): Promise<Task> {
    this.assertRunning("submitAsync");
    validateKeys("submitAsync() options", options, SUBMIT_KEYS);
    const admitted = this.admit(taskType, options);
    if (admitted !== undefined) await admitted;
    return this.queue.enqueue({ ...this.pool.handlerTable.submitOptions(taskType, options), taskType, data });
  }

  waitFor(taskId: string, options: WaitOptions = {}): Promise<TaskResult> {
    return this.queue.waitForTask(taskId, options);
  }

  async getTask(taskId: string): Promise<Task | undefined> {
    return this.queue.getTask(taskId);
  }

  async cancelTask(taskId: string): Promise<TaskResult> {
    return this.queue.cancel(taskId);
  }

  /** Sets the number of local workers (within minWorkers..maxWorkers). */
  /**
   * Sets the number of workers: this coordinator's own (within minWorkers..maxWorkers) when it has
   * handlers; otherwise the cluster's, by sending each remote pool its share.
   */
  async scale(workers: number): Promise<void> {
    checked("Coordinator.scale() workers", workers, intIn(0, LIMITS.workers));
    this.assertRunning("scale");
    const from = this.scaler.count();
    await this.scaler.scaleTo(workers);
    this.noteScaled(from, workers);
  }

  /** Asks the worker pools on the transport (one, or all) to drain and stop. */
  async drainWorkers(options: { poolId?: string } = {}): Promise<void> {
    this.assertRunning("drainWorkers");
    await this.scaler.drain(options.poolId);
  }

  /** Every worker heartbeating on the transport (this process's and others'). */
  async getWorkers(): Promise<WorkerInfo[]> {
    const byId = new Map<string, WorkerInfo>();
    for (const info of this.registry.list()) byId.set(info.id, info);
    for (const info of this.pool.getWorkers()) byId.set(info.id, info);
    return [...byId.values()];
  }

  /** The work queues this coordinator knows of: its submits' and those its workers (any process) serve. */
  private knownWorkQueues(): Set<string> {
    const names = new Set(this.queue.workQueues);
    const kinds = new Map<string, WorkerInfo>();
    for (const w of [...this.registry.list(), ...this.pool.getWorkers()]) {
      kinds.set(`${w.types.join(",")}|${w.tags.join(",")}`, w);
    }
    for (const w of kinds.values()) {
      for (const q of queuesServedBy(this.config.queueName, w.types, w.tags)) names.add(q);
    }
    return names;
  }

  getStats() {
    const q = this.queue.getStats();
    const p = this.pool.getStats();
    return {
      state: this.state,
      running: q.running,
      submitted: q.submitted,
      queued: q.queued,
      completed: q.completed,
      failed: q.failed,
      cancelled: q.cancelled,
      timeout: q.timeout,
      retried: q.retried,
      duplicates: q.duplicates,
      reruns: q.reruns,
      queue: { name: q.name, queueSize: q.queueSize, maxQueueSize: q.maxQueueSize, depth: this.lastDepth },
      workers: {
        workerCount: p.workerCount,
        idleWorkers: p.idleWorkers,
        busyWorkers: p.busyWorkers,
        currentTasks: p.currentTasks,
        totalCompleted: p.totalCompleted,
        totalFailed: p.totalFailed,
        restarts: p.restarts,
        poolRestarts: this.poolSupervisor.restarts,
        escalated: p.escalated || this.poolSupervisor.escalation !== undefined,
        abandonedHandlers: p.abandonedHandlers,
        totalAbandoned: p.totalAbandoned,
        clusterAbandonedHandlers: this.clusterAbandoned(p.abandonedHandlers),
        ...this.clusterRuns(p),
        clusterWorkers: new Set([
          ...this.registry.list().map((w) => w.id),
          ...this.pool.getWorkers().map((w) => w.id),
        ]).size,
      },
      scaling: {
        autoScale: this.config.autoScale,
        minWorkers: this.config.minWorkers,
        maxWorkers: this.config.maxWorkers,
        scaleEvents: this.scaleEvents,
      },
    };
  }

  /**
   * Duplicate runs as the workers see them: this pool's (replaced workers included), plus what
   * the other processes' workers heartbeating now report (a worker gone takes its counts along).
   */
  private clusterRuns(p: { redeliveredRuns: number; skippedFinished: number; ranAfterRecorded: number }) {
    let { redeliveredRuns, skippedFinished, ranAfterRecorded } = p;
    for (const w of this.registry.list()) {
      if (w.poolId === this.pool.id) continue;
      redeliveredRuns += w.redeliveredRuns ?? 0;
      skippedFinished += w.skippedFinished ?? 0;
      ranAfterRecorded += w.ranAfterRecorded ?? 0;
    }
    return { redeliveredRuns, skippedFinished, ranAfterRecorded };
  }

  /** This process's abandoned handlers, plus those other processes' workers report in their heartbeats. */
  private clusterAbandoned(local: number): number {
    let n = local;
    // This pool's workers (live, or gone with handlers still running) are counted in `local` already.
    for (const w of this.registry.list()) if (w.poolId !== this.pool.id) n += w.abandonedHandlers ?? 0;
    return n;
  }

  /** Stops the coordinator; graceful (the default) lets running tasks finish first. */
  async stop(options: { graceful?: boolean } = {}): Promise<void> {
    if (this.stopping) return this.stopping;
    const snapshot = this.actor.getSnapshot();
    if (snapshot.status !== "active" || snapshot.matches("idle")) {
      this.actor.stop();
      await this.queue.close();
      return;
    }
    this.stopping = new Promise<void>((resolve) => {
      this.resolveStopped = resolve;
    });
    this.actor.send({ type: "STOP", graceful: options.graceful ?? true });
    return this.stopping;
  }

  private async shutdown(graceful: boolean): Promise<void> {
    try {
      this.poolSupervisor.stop();
      await this.pool.stop({ graceful });
      await this.bus?.close();
      await this.entityClient?.close();
      await this.queue.close();
      await this.registry.stop();
      await this.membership.close();
      if (this.ownsTransport) await this.transport.close();
    } catch (error) {
      this.logger.error({ err: describeThrown(error) }, "error while stopping");
    }
    this.actor.send({ type: "STOPPED" });
    this.actor.stop();
    this.keepAlive.release();
    this.resolveStopped?.();
  }

  /** The tree below gave up: stop, and tell the process (a non-zero exit code when nobody listens). */
  private escalate(error: EscalationError): void {
    if (this.listenerCount("escalated") > 0) this.emit("escalated", error);
    else {
      this.logger.error({ err: error.message }, "coordinator escalated; the process will exit with code 1");
      process.exitCode = 1;
    }
    this.stopping ??= new Promise<void>((resolve) => {
      this.resolveStopped = resolve;
    });
    this.actor.send({ type: "ESCALATE", error: error.message });
  }

  private checkHealth(): void {
    for (const dead of this.registry.expire(this.config.workerTimeoutMs)) {
      const reason = `no heartbeat for ${this.config.workerTimeoutMs} ms`;
      this.logger.warn(
        { workerId: dead.id, pid: dead.pid, hostname: dead.hostname },
        `worker declared dead: ${reason}`,
      );
      if (this.pool.hasWorker(dead.id)) void this.pool.declareDead(dead.id, reason);
      void this.membership.declaredDead(dead).then((report) => {
        if (report?.skipped)
          this.logger.warn({ workerId: dead.id }, `its deliveries not released: ${report.skipped}`);
        else if (report)
          this.logger.info(
            { workerId: dead.id, released: report.released, releaseDelayMs: report.delayMs },
            "worker fenced",
          );
      });
      if (this.listenerCount("worker.dead") > 0) this.emit("worker.dead", dead);
    }
  }

  private async sampleLoad(): Promise<void> {
    try {
      const depths = await Promise.all(
        this.scaler.queues(this.queue.workQueues).map((q) => this.transport.depth(q)),
      );
      this.lastDepth = depths.reduce((a, b) => a + b, 0);
    } catch (error) {
      this.logger.warn(
        { err: describeThrown(error) },
        "could not read queue depth; skipping this scaling round",
      );
      return;
    }
    if (!this.actor.getSnapshot().matches("running")) return;
    const workers = this.scaler.count();
    if (!this.scaler.local && workers === 0) return; // no pool to scale (yet)
    this.actor.send({ type: "SCALE_SAMPLE", depth: this.lastDepth, workers, now: this.clock.now() });
  }

  private applyScale(workers: number): void {
    const from = this.scaler.count();
    this.scaler
      .scaleTo(workers)
      .then(() => this.noteScaled(from, workers))
      .catch((error) => this.logger.warn({ err: describeThrown(error) }, "auto-scaling failed"));
  }

  private noteScaled(from: number, to: number): void {
    if (from === to) return;
    this.scaleEvents++;
    if (this.listenerCount("scaled") > 0) this.emit("scaled", { from, to });
  }

  private assertRunning(what: string): void {
    // `state`, not snapshot.matches(): this runs on every submit, and matches() allocates.
    if (this.state !== "running") {
      throw new StateError(`Coordinator.${what}(): the coordinator is ${this.state}; await start() first.`);
    }
  }

  /**
   * Undefined when the type is accepted, a promise while a worker serving it may still announce
   * itself (broker transports: in one process every worker is known at once); throws NoHandlerError.
   */
  private admit(taskType: string, options: SubmitOptions): Promise<void> | undefined {
    const given = options?.tags;
    // Tags that are not an array of names, or more than a worker carries, are the queue's to refuse.
    const tags = given === undefined || !Array.isArray(given) ? undefined : normalizeTags(given);
    if (tags !== undefined && tags.length > MAX_TAGS_PER_WORKER) return undefined;
    return this.admission.admit(taskType, tags, this.transport.kind !== "memory");
  }
}
