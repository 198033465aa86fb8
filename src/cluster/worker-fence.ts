/**
 * A worker's side of fencing: the cluster's decision that it is dead wins over its own opinion.
 *
 * - A coordinator that declared it dead says so (control "fence"): it leaves at once, forgetting
 *   the deliveries the coordinator already sent back (they run elsewhere; settling them now could
 *   settle the new holder's copy), and its pool replaces it under a new id.
 * - It notices by itself that it was stalled (its heartbeat timer ran far too late: SIGSTOP, a
 *   blocked event loop) — on the heartbeat, and before reporting any outcome: a result computed
 *   across the stall is not reported, nor its delivery settled, since the cluster may have handed
 *   the task to someone else meanwhile. It leaves too.
 *
 * Once fenced, nothing it still finishes is reported: its late results stay its own.
 */
import type { Clock } from "../clock.js";
import type { WorkerConfig } from "../config.js";
import type { Logger } from "../logger.js";

export interface WorkerFenceOptions {
  clock: Clock;
  config: WorkerConfig;
  logger: Logger;
  /** Ends the worker as failed (its supervisor replaces it). */
  terminate(reason: string): void;
}

export class WorkerFence {
  /** When the heartbeat timer last ran (0: not yet). */
  lastHeartbeat = 0;
  fenced = false;

  constructor(private readonly options: WorkerFenceOptions) {}

  /** The heartbeat timer ran: false when it ran so late that the worker must leave (it does). */
  beat(): boolean {
    if (this.fenced || this.stalled()) return false;
    this.lastHeartbeat = this.options.clock.now();
    return true;
  }

  /** Before an outcome is reported and its delivery settled: false when it must not be. */
  mayReport(): boolean {
    return !this.fenced && !this.stalled();
  }

  /** A coordinator declared this worker dead: forget what it released, and leave. */
  fence(forgetReleased: () => void): void {
    if (this.fenced) return;
    this.fenced = true;
    forgetReleased();
    this.options.logger.warn(
      {},
      "a coordinator declared this worker dead; leaving, to rejoin as a new worker",
    );
    this.options.terminate("declared dead by a coordinator (fenced)");
  }

  /** Whether the heartbeat is overdue by more than stallTimeoutMs; if so, fences and leaves. */
  private stalled(): boolean {
    const { heartbeatIntervalMs, stallTimeoutMs } = this.options.config;
    const gap = this.options.clock.now() - this.lastHeartbeat;
    if (this.lastHeartbeat === 0 || gap <= heartbeatIntervalMs + stallTimeoutMs) return false;
    // This process was frozen long enough to be declared dead: its tasks may run elsewhere already.
    this.fenced = true;
    this.options.logger.warn(
      { stalledMs: gap },
      "worker was stalled past stallTimeoutMs; leaving, to rejoin as a new worker",
    );
    this.options.terminate(`stalled for ${gap} ms (over stallTimeoutMs ${stallTimeoutMs})`);
    return true;
  }
}
