/**
 * A group of Workers with the same handlers, scaled between minWorkers and maxWorkers and
 * supervised one-for-one: a worker that dies (its actor errors, or its heartbeats stop) is
 * replaced, within the restart intensity (a worker that stopped cleanly, drained or scaled away,
 * is not: restart "transient"); past it the pool gives up as an OTP supervisor does: it stops its
 * remaining workers, rests in "failed" and escalates (emits "escalated") to its own supervisor
 * (src/supervision/pool-supervisor.ts), which may restart it in place (`restartAfterEscalation`).
 */
import { EventEmitter } from "node:events";
import { type Actor, createActor } from "xstate";
import { supervisorMachine } from "../actors/supervisor.machine.js";
import { InMemoryTransport } from "../transports/memory/memory.transport.js";
import type { Subscription, Transport } from "../transports/transport.js";
import { type Clock, systemClock } from "./clock.js";
import { decodeControl } from "./codec.js";
import {
  assertMinMax,
  DEFAULT_RESTART_INTENSITY,
  type RestartIntensity,
  type RetryBackoff,
  resolveWorkerConfig,
  validatePoolOptions,
  type WorkerConfig,
} from "./config.js";
import { registerActor, runActorHooks } from "./decorators/actor-explorer.js";
import type { AnyEntityDefinition } from "./entities/define-entity.js";
import { type EntitiesOptions, entityToRegister, resolveEntitiesOptions } from "./entities/entity-hosting.js";
import { ConfigError, EscalationError, StateError } from "./errors.js";
import { ActorEvents } from "./events/actor-events.js";
import { type HandlerRegistrar, HandlerTable } from "./handlers.js";
import { newId } from "./ids.js";
import { KeepAlive } from "./keep-alive.js";
import { childLogger, getDefaultLogger, type Logger } from "./logger.js";
import { subjects } from "./names.js";
import { submitAndWait } from "./submit.js";
import { TaskQueue } from "./task-queue.js";
import type { SubmitOptions, TaskHandler, WorkerInfo } from "./types.js";
import { Worker, type WorkerExit, xstateClock } from "./worker.js";

export interface WorkerPoolOptions {
  id?: string;
  minWorkers?: number;
  maxWorkers?: number;
  config?: Partial<WorkerConfig>;
  transport?: Transport;
  queueName?: string;
  clock?: Clock;
  logger?: Logger;
  retryBackoff?: Partial<RetryBackoff>;
  restartIntensity?: Partial<RestartIntensity>;
  /** Entity hosting: state store, event sink, failover time (see README, "Entities"). */
  entities?: EntitiesOptions;
  /** Whether the started pool keeps the process alive until stop() (default true; src/keep-alive.ts). */
  keepAlive?: boolean;
}

export interface WorkerPoolStats {
  poolId: string;
  workerCount: number;
  minWorkers: number;
  maxWorkers: number;
  idleWorkers: number;
  busyWorkers: number;
  currentTasks: number;
  totalCompleted: number;
  totalFailed: number;
  /** Workers replaced by the supervisor since start. */
  restarts: number;
  escalated: boolean;
  /** Handlers still running after their outcome (ignoring ctx.signal), workers already replaced included. */
  abandonedHandlers: number;
  /** Handlers abandoned since start. */
  totalAbandoned: number;
  /** Duplicate runs seen by the workers (WorkerInfo.redeliveredRuns), replaced workers included. */
  redeliveredRuns: number;
  /** Redeliveries of finished tasks not run again (WorkerInfo.skippedFinished). */
  skippedFinished: number;
  /** Runs whose outcome found another already recorded (WorkerInfo.ranAfterRecorded). */
  ranAfterRecorded: number;
}

interface PoolEvents {
  /** The pool stopped (after stop(), or a drain command from a coordinator). */
  stopped: [];
  "worker.started": [WorkerInfo];
  "worker.exited": [WorkerExit];
  escalated: [EscalationError];
}

export class WorkerPool extends EventEmitter<PoolEvents> {
  readonly id: string;
  readonly minWorkers: number;
  readonly maxWorkers: number;
  readonly queueName: string;

  private readonly handlers = new HandlerTable();
  /** The workers' config: what the user gave, plus what registered @Actor classes set. */
  private readonly workerConfig: Partial<WorkerConfig>;
  private readonly givenConfig?: Partial<WorkerConfig>;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly retryBackoff?: Partial<RetryBackoff>;
  private readonly workers = new Map<string, Worker>();
  private readonly leaving = new Set<string>();
  private supervisor: Actor<typeof supervisorMachine>;
  private readonly intensity: RestartIntensity;
  private queue?: TaskQueue;
  private control?: Subscription;
  private state: "new" | "running" | "failed" | "stopping" | "stopped" = "new";
  private stopping?: Promise<void>;
  private seq = 0;
  private restarts = 0;
  private escalation?: EscalationError;
  private retired = {
    completed: 0,
    failed: 0,
    abandoned: 0,
    redeliveredRuns: 0,
    skippedFinished: 0,
    ranAfterRecorded: 0,
  };
  /** Workers gone whose abandoned handlers still run (they are in this process all the same). */
  private readonly leftovers = new Set<Worker>();
  private readonly entityOptions: EntitiesOptions;
  private readonly entityDefs = new Map<string, AnyEntityDefinition>();
  private readonly keepAlive: KeepAlive;

  constructor(options: WorkerPoolOptions = {}) {
    super();
    validatePoolOptions(options);
    this.keepAlive = new KeepAlive(options.keepAlive);
    this.id = options.id ?? newId("pool");
    this.minWorkers = options.minWorkers ?? 1;
    this.maxWorkers = options.maxWorkers ?? Math.max(10, this.minWorkers);
    assertMinMax("WorkerPoolOptions", this.minWorkers, this.maxWorkers);
    this.workerConfig = { ...options.config };
    this.givenConfig = options.config;
    this.queueName = options.queueName ?? "default";
    this.clock = options.clock ?? systemClock;
    this.transport = options.transport ?? new InMemoryTransport({ clock: this.clock });
    this.logger = childLogger(options.logger ?? getDefaultLogger(), { poolId: this.id });
    this.retryBackoff = options.retryBackoff;
    this.entityOptions = resolveEntitiesOptions(options.entities, "WorkerPoolOptions");
    resolveWorkerConfig(options.config, "WorkerPoolOptions.config"); // fail now, not at the first spawn
    this.intensity = { ...DEFAULT_RESTART_INTENSITY, ...options.restartIntensity };
    this.supervisor = this.newSupervisor();
  }

  /** The supervisor of the workers: one per incarnation of the pool (a restart gets a fresh window). */
  private newSupervisor(): Actor<typeof supervisorMachine> {
    return createActor(
      supervisorMachine.provide({
        actions: {
          restartChild: (_, params) => this.restartWorker(params.childId, params.delayMs),
          escalate: (_, params) => this.escalate(params.reason),
        },
      }),
      { input: { ...this.intensity, restart: "transient" }, clock: xstateClock(this.clock) },
    );
  }

  handler(type: string, fn: TaskHandler): TaskHandler;
  handler(type: string): HandlerRegistrar;
  handler(type: string, fn?: TaskHandler): TaskHandler | HandlerRegistrar {
    return this.handlers.handlerApi(type, fn, "WorkerPool.handler()");
  }

  registerHandler(type: string, fn: TaskHandler): void {
    this.handlers.register(type, fn, "WorkerPool.registerHandler()");
    for (const w of this.workers.values()) w.registerHandler(type, fn);
  }

  /** Registers the @Handler methods of an @Actor instance (rules: src/decorators/actor-explorer.ts). */
  register(instance: object): this {
    const entity = entityToRegister(instance, `WorkerPool ${this.id}`);
    if (entity) {
      if (this.entityDefs.get(entity.name) === entity) return this;
      for (const w of this.workers.values()) w.register(entity); // refuses a second type of the same name
      if (this.entityDefs.has(entity.name)) {
        throw new ConfigError(
          `WorkerPool ${this.id}.register(): an entity type named "${entity.name}" is already registered. ` +
            "Each type has one definition; register it once, or give the other a different name.",
        );
      }
      this.entityDefs.set(entity.name, entity);
      return this;
    }
    const actor = registerActor(this, instance, {
      owner: `WorkerPool ${this.id}`,
      handlers: this.handlers,
      started: this.state !== "new",
      settings: this.workerConfig,
      given: this.givenConfig,
    });
    this.actorEvents.add(actor.events);
    return this;
  }

  /** The @On methods of the registered actors, subscribed while the pool runs. */
  private readonly actorEvents = new ActorEvents();
  /** The entity types this pool's workers hold. */
  get entityDefinitions(): AnyEntityDefinition[] {
    return [...this.entityDefs.values()];
  }

  /** @internal The handler table, shared with a Coordinator. */
  get handlerTable(): HandlerTable {
    return this.handlers;
  }

  /** The tags this pool's workers carry (configured, or adopted from registered actors). */
  get workerTags(): string[] {
    return [...new Set(this.workerConfig.tags ?? [])].sort();
  }

  get workerCount(): number {
    return this.workers.size;
  }

  async start(): Promise<void> {
    if (this.state === "running") return;
    if (this.state !== "new") throw new StateError(`WorkerPool ${this.id} was stopped; create a new one.`);
    this.state = "running";
    this.keepAlive.take();
    try {
      await runActorHooks(this, "start", `WorkerPool ${this.id}`);
    } catch (error) {
      this.state = "stopped";
      this.keepAlive.release();
      throw error;
    }
    this.handlers.onRegister((type) => {
      const fn = this.handlers.get(type) as TaskHandler;
      for (const w of this.workers.values()) if (!w.types.includes(type)) w.registerHandler(type, fn);
    });
    await this.transport.connect();
    this.supervisor.start();
    this.control = await this.transport.subscribe(subjects.control, (m) => this.onControl(m.body));
    await Promise.all(Array.from({ length: this.minWorkers }, () => this.spawn()));
    await this.actorEvents.start(this.transport, this.clock, this.logger);
  }

  /** Submits a task to this pool's queue and resolves with the handler's result. */
  async submit(taskType: string, data?: unknown, options: SubmitOptions = {}): Promise<unknown> {
    this.queue ??= new TaskQueue({
      name: this.queueName,
      transport: this.transport,
      clock: this.clock,
      maxQueueSize: 1_000_000,
    });
    return submitAndWait(this.queue, taskType, data, this.handlers.submitOptions(taskType, options));
  }

  /** Sets the number of workers (within minWorkers..maxWorkers). Removed workers drain first. */
  async scale(workers: number): Promise<void> {
    if (!Number.isInteger(workers) || workers < this.minWorkers || workers > this.maxWorkers) {
      throw new ConfigError(
        `WorkerPool ${this.id}: cannot scale to ${workers} workers; use an integer from minWorkers ` +
          `(${this.minWorkers}) to maxWorkers (${this.maxWorkers}).`,
      );
    }
    if (this.state !== "running")
      throw new StateError(`WorkerPool ${this.id} is ${this.state}; start() it first.`);
    const current = this.workers.size;
    if (workers > current) {
      await Promise.all(Array.from({ length: workers - current }, () => this.spawn()));
      return;
    }
    const victims = [...this.workers.values()]
      .sort((a, b) => a.info.currentTasks - b.info.currentTasks)
      .slice(0, current - workers);
    await Promise.all(victims.map((w) => this.retire(w)));
  }

  getWorkers(): WorkerInfo[] {
    return [...this.workers.values()].map((w) => w.info);
  }

  hasWorker(workerId: string): boolean {
    return this.workers.has(workerId);
  }

  /**
   * After an escalation ("failed": its workers gave up), starts the pool again in place: a fresh
   * restart window and minWorkers new workers. Called by the pool's own supervisor.
   */
  async restartAfterEscalation(): Promise<void> {
    if (this.state !== "failed") return;
    this.state = "running";
    this.escalation = undefined;
    this.supervisor = this.newSupervisor();
    this.supervisor.start();
    await Promise.all(Array.from({ length: this.minWorkers }, () => this.spawn()));
  }

  /** "new", "running", "failed" (escalated: no workers until restarted), "stopping" or "stopped". */
  get status(): string {
    return this.state;
  }

  /** Ends a worker that stopped heartbeating; the supervisor replaces it. */
  async declareDead(workerId: string, reason: string): Promise<void> {
    await this.workers.get(workerId)?.terminate(reason);
  }

  getStats(): WorkerPoolStats {
    let idle = 0;
    let busy = 0;
    let current = 0;
    let completed = this.retired.completed;
    let failed = this.retired.failed;
    let totalAbandoned = this.retired.abandoned;
    let abandoned = 0;
    let { redeliveredRuns, skippedFinished, ranAfterRecorded } = this.retired;
    for (const w of this.workers.values()) {
      const info = w.info;
      if (info.status === "idle") idle++;
      if (info.status === "busy") busy++;
      current += info.currentTasks;
      completed += info.totalCompleted;
      failed += info.totalFailed;
      abandoned += info.abandonedHandlers ?? 0;
      totalAbandoned += info.totalAbandoned ?? 0;
      redeliveredRuns += info.redeliveredRuns ?? 0;
      skippedFinished += info.skippedFinished ?? 0;
      ranAfterRecorded += info.ranAfterRecorded ?? 0;
    }
    for (const w of this.leftovers) {
      if (w.abandonedHandlers === 0) this.leftovers.delete(w);
      else abandoned += w.abandonedHandlers;
    }
    return {
      poolId: this.id,
      workerCount: this.workers.size,
      minWorkers: this.minWorkers,
      maxWorkers: this.maxWorkers,
      idleWorkers: idle,
      busyWorkers: busy,
      currentTasks: current,
      totalCompleted: completed,
      totalFailed: failed,
      restarts: this.restarts,
      escalated: this.escalation !== undefined,
      abandonedHandlers: abandoned,
      totalAbandoned,
      redeliveredRuns,
      skippedFinished,
      ranAfterRecorded,
    };
  }

  async stop(options: { graceful?: boolean } = {}): Promise<void> {
    if (this.stopping) return this.stopping;
    if (this.state === "stopped" || this.state === "new") {
      this.state = "stopped";
      return;
    }
    this.state = "stopping";
    this.stopping = (async () => {
      this.supervisor.send({ type: "STOP" });
      await this.control?.unsubscribe();
      await Promise.all([...this.workers.values()].map((w) => w.stop(options)));
      await this.actorEvents.stop();
      await this.queue?.close();
      this.supervisor.stop();
      this.state = "stopped";
      this.keepAlive.release();
      await runActorHooks(this, "stop", `WorkerPool ${this.id}`);
      this.emit("stopped");
    })();
    return this.stopping;
  }

  private async spawn(): Promise<Worker> {
    const worker = new Worker({
      id: `${this.id}-w${++this.seq}`,
      transport: this.transport,
      config: this.workerConfig,
      queueName: this.queueName,
      clock: this.clock,
      logger: this.logger,
      retryBackoff: this.retryBackoff,
      poolId: this.id,
      entities: this.entityOptions,
      keepAlive: false, // the pool's own hold covers its workers
    });
    for (const [type, fn] of this.handlers.entries()) worker.registerHandler(type, fn);
    for (const def of this.entityDefs.values()) worker.register(def);
    this.workers.set(worker.id, worker);
    worker.on("exit", (exit) => this.onExit(worker, exit));
    await worker.start();
    this.emit("worker.started", worker.info);
    return worker;
  }

  private async retire(worker: Worker): Promise<void> {
    this.leaving.add(worker.id);
    await worker.stop({ graceful: true });
  }

  private onExit(worker: Worker, exit: WorkerExit): void {
    this.workers.delete(worker.id);
    this.leaving.delete(worker.id);
    const info = worker.info;
    this.retired.completed += info.totalCompleted;
    this.retired.failed += info.totalFailed;
    this.retired.abandoned += info.totalAbandoned ?? 0;
    this.retired.redeliveredRuns += info.redeliveredRuns ?? 0;
    this.retired.skippedFinished += info.skippedFinished ?? 0;
    this.retired.ranAfterRecorded += info.ranAfterRecorded ?? 0;
    if (worker.abandonedHandlers > 0) this.leftovers.add(worker);
    this.emit("worker.exited", exit);
    if (this.state !== "running") return;
    if (exit.abnormal) {
      this.logger.warn({ workerId: worker.id, reason: exit.reason }, "worker died; asking the supervisor");
    }
    this.supervisor.send({
      type: "CHILD_EXITED",
      childId: worker.id,
      at: this.clock.now(),
      reason: exit.reason,
      abnormal: exit.abnormal,
    });
  }

  private restartWorker(childId: string, delayMs: number): void {
    const supervisor = this.supervisor;
    this.clock.setTimeout(() => {
      if (this.state !== "running" || supervisor !== this.supervisor || this.workers.size >= this.maxWorkers)
        return;
      this.restarts++;
      this.spawn().catch((error) => {
        supervisor.send({
          type: "CHILD_EXITED",
          childId,
          at: this.clock.now(),
          reason: String(error),
          abnormal: true,
        });
      });
    }, delayMs);
  }

  private escalate(reason: string): void {
    this.state = "failed";
    this.escalation = new EscalationError(
      `WorkerPool ${this.id} gave up restarting workers: ${reason}. Fix the cause (see the workers' errors); ` +
        "raise restartIntensity only if such crashes are expected.",
    );
    this.logger.error({ reason }, "supervisor escalated");
    // As an OTP supervisor that gives up: its remaining workers end too (their tasks go back).
    const remaining = [...this.workers.values()];
    void Promise.all(remaining.map((w) => w.stop({ graceful: false }))).finally(() =>
      this.emit("escalated", this.escalation as EscalationError),
    );
  }

  private onControl(body: Uint8Array): void {
    let command: ReturnType<typeof decodeControl>;
    try {
      command = decodeControl(body);
    } catch {
      return;
    }
    if (command.kind !== "scale" && command.kind !== "drain") return;
    if (command.poolId !== undefined && command.poolId !== this.id) return;
    if (command.kind === "scale") {
      const target = Math.max(this.minWorkers, Math.min(this.maxWorkers, command.workers));
      if (target !== this.workers.size)
        void this.scale(target).catch((e) => this.logger.warn({ err: String(e) }, "scale failed"));
    } else if (command.kind === "drain") {
      void this.stop({ graceful: true });
    }
  }
}
