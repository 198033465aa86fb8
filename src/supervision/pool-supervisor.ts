/**
 * The level above a WorkerPool in the supervision tree (as in OTP: a supervisor of supervisors).
 * A pool that escalates (its workers died faster than its restart intensity allows) is restarted
 * in place, with back-off, within this level's own intensity; past it, this level gives up and
 * escalates to its owner — the Coordinator, which then stops and tells the process
 * (`Coordinator` "escalated"), or the `fastagentic worker` command, which exits non-zero for its
 * process supervisor (or systemd, Kubernetes) to act. A pool that stops cleanly is not restarted
 * (restart "transient").
 *
 *   process supervisor (CLI --processes) → PoolSupervisor → WorkerPool → Workers
 */
import { EventEmitter } from "node:events";
import { type Actor, createActor } from "xstate";
import { supervisorMachine } from "../../actors/supervisor.machine.js";
import type { Clock } from "../clock.js";
import type { RestartIntensity } from "../config.js";
import { describeThrown, EscalationError } from "../errors.js";
import type { Logger } from "../logger.js";
import { xstateClock } from "../worker.js";
import type { WorkerPool } from "../worker-pool.js";

export interface PoolSupervisorOptions {
  intensity: RestartIntensity;
  clock: Clock;
  logger: Logger;
  /** Who owns this level, for messages ("Coordinator", "fastagentic worker 1234"). */
  owner: string;
}

interface PoolSupervisorEvents {
  /** This level gave up: the pool escalated more often than its intensity allows. */
  escalated: [EscalationError];
  /** The pool was restarted after an escalation. */
  restarted: [{ poolId: string; restarts: number }];
}

export class PoolSupervisor extends EventEmitter<PoolSupervisorEvents> {
  /** Times the pool was restarted after escalating. */
  restarts = 0;
  escalation?: EscalationError;
  private readonly actor: Actor<typeof supervisorMachine>;
  private readonly onPoolEscalated = (error: EscalationError) => this.poolEscalated(error);
  private readonly onPoolStopped = () => this.poolStopped();

  constructor(
    private readonly pool: WorkerPool,
    private readonly options: PoolSupervisorOptions,
  ) {
    super();
    this.actor = createActor(
      supervisorMachine.provide({
        actions: {
          restartChild: (_, { delayMs }) => this.restartPool(delayMs),
          escalate: (_, { reason }) => this.escalate(reason),
        },
      }),
      { input: { ...options.intensity, restart: "transient" }, clock: xstateClock(options.clock) },
    );
  }

  private started = false;

  start(): void {
    if (this.started) return;
    this.started = true;
    this.actor.start();
    this.pool.on("escalated", this.onPoolEscalated);
    this.pool.on("stopped", this.onPoolStopped);
  }

  stop(): void {
    this.pool.off("escalated", this.onPoolEscalated);
    this.pool.off("stopped", this.onPoolStopped);
    if (this.actor.getSnapshot().status === "active") this.actor.send({ type: "STOP" });
    this.actor.stop();
  }

  private poolEscalated(error: EscalationError): void {
    this.options.logger.warn({ poolId: this.pool.id, reason: error.message }, "worker pool escalated");
    this.actor.send({
      type: "CHILD_EXITED",
      childId: this.pool.id,
      at: this.options.clock.now(),
      reason: error.message,
      abnormal: true,
    });
  }

  /** A pool that stopped cleanly (stop(), a drain command) is not restarted. */
  private poolStopped(): void {
    this.actor.send({
      type: "CHILD_EXITED",
      childId: this.pool.id,
      at: this.options.clock.now(),
      reason: "stopped",
      abnormal: false,
    });
  }

  private restartPool(delayMs: number): void {
    this.options.clock.setTimeout(() => {
      if (this.actor.getSnapshot().status !== "active") return;
      this.restarts++;
      this.pool.restartAfterEscalation().then(
        () => this.emit("restarted", { poolId: this.pool.id, restarts: this.restarts }),
        (error: unknown) =>
          this.poolEscalated(new EscalationError(`restarting the pool failed: ${describeThrown(error)}`)),
      );
    }, delayMs);
  }

  private escalate(reason: string): void {
    this.escalation = new EscalationError(
      `${this.options.owner} gave up: its worker pool ${this.pool.id} kept failing (${reason}). ` +
        "Fix the cause (see the workers' errors); raise restartIntensity only if such failures are expected.",
    );
    this.options.logger.error({ poolId: this.pool.id, reason }, "supervision escalated to the process");
    this.emit("escalated", this.escalation);
  }
}
