/**
 * What a coordinator knows of the cluster's members beyond their heartbeats: it warns about a
 * worker whose announced heartbeat interval cannot satisfy this coordinator's workerTimeoutMs
 * (it would be declared dead between two heartbeats, again and again).
 */
import { heartbeatTimingProblem } from "../config.js";
import type { Logger } from "../logger.js";
import type { TransportWorkerRegistry } from "../registry.js";

/** Pools (or workers without one) already warned about, at most this many remembered. */
const WARNED_MEMORY = 10_000;

export interface MembershipOptions {
  registry: TransportWorkerRegistry;
  logger: Logger;
  workerTimeoutMs: number;
}

export class ClusterMembership {
  private readonly warned = new Set<string>();
  private readonly unsubscribe: () => void;

  constructor(private readonly options: MembershipOptions) {
    this.unsubscribe = options.registry.onWorkerEvent((event, known) => {
      if (!known && event.kind === "heartbeat") this.checkTimings(event.info);
    });
  }

  close(): void {
    this.unsubscribe();
  }

  /** Warns once per pool when a worker's heartbeat interval is too long for workerTimeoutMs. */
  private checkTimings(info: {
    id: string;
    poolId?: string;
    heartbeatIntervalMs?: number;
    pid?: number;
  }): void {
    if (info.heartbeatIntervalMs === undefined) return;
    const problem = heartbeatTimingProblem(this.options.workerTimeoutMs, info.heartbeatIntervalMs, {
      timeout: "this coordinator's workerTimeoutMs",
      interval: "the worker's heartbeatIntervalMs",
    });
    const key = info.poolId ?? info.id;
    if (problem === undefined || this.warned.has(key)) return;
    if (this.warned.size >= WARNED_MEMORY) this.warned.clear();
    this.warned.add(key);
    this.options.logger.warn(
      { workerId: info.id, poolId: info.poolId, pid: info.pid },
      `a worker on the transport cannot be kept alive: ${problem} (fastagentic worker: --heartbeat-ms)`,
    );
  }
}
