/**
 * What a coordinator knows of the cluster's members beyond their heartbeats, and what its
 * decisions about them set off:
 *
 * - it warns about a worker whose announced heartbeat interval cannot satisfy this coordinator's
 *   workerTimeoutMs (it would be declared dead between two heartbeats, again and again);
 * - it follows which deliveries each worker holds (held-deliveries.ts), so that when it declares a
 *   worker of another process dead it can release them and fence the worker (failover.ts);
 * - a worker declared dead that heartbeats again is told again to leave; a fence from another
 *   coordinator makes this one drop the worker too.
 */
import type { Subscription, Transport } from "../../transports/transport.js";
import type { Clock } from "../clock.js";
import { decodeControl, type TaskEvent, type WorkerEvent } from "../codec.js";
import { heartbeatTimingProblem } from "../config.js";
import type { Logger } from "../logger.js";
import { subjects } from "../names.js";
import type { TransportWorkerRegistry } from "../registry.js";
import type { WorkerInfo } from "../types.js";
import { Failover, type FailoverReport } from "./failover.js";
import { HeldDeliveries } from "./held-deliveries.js";

/** Pools (or workers without one) already warned about, at most this many remembered. */
const WARNED_MEMORY = 10_000;

export interface MembershipOptions {
  registry: TransportWorkerRegistry;
  transport: Transport;
  clock: Clock;
  logger: Logger;
  workerTimeoutMs: number;
  /** Whether a worker is one of this coordinator's own (its pool ends those itself). */
  isLocal(workerId: string): boolean;
  /** A worker another coordinator declared dead (and this one now drops). */
  onDeclaredElsewhere(info: WorkerInfo): void;
}

export class ClusterMembership {
  private readonly warned = new Set<string>();
  private readonly held = new HeldDeliveries();
  private readonly failover: Failover;
  private readonly unsubscribe: () => void;
  private control?: Subscription;

  constructor(private readonly options: MembershipOptions) {
    this.failover = new Failover({
      transport: options.transport,
      clock: options.clock,
      logger: options.logger,
    });
    this.unsubscribe = options.registry.onWorkerEvent((event, known) => this.workerEvent(event, known));
  }

  /** Listens to fences from other coordinators. */
  async start(): Promise<void> {
    this.control ??= await this.options.transport.subscribe(subjects.control, (m) => {
      try {
        const command = decodeControl(m.body);
        if (command.kind === "fence") for (const id of command.workerIds) this.fencedElsewhere(id);
      } catch {
        // not ours to judge
      }
    });
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await this.control?.unsubscribe().catch(() => {});
    this.control = undefined;
  }

  /** A task event heard by the coordinator's queue: who started (holds) or finished what. */
  taskEvent(event: TaskEvent): void {
    this.held.taskEvent(event);
  }

  /** The coordinator declared this worker dead: a remote one has its deliveries released and is fenced. */
  async declaredDead(info: WorkerInfo): Promise<FailoverReport | undefined> {
    const held = this.held.take(info.id);
    if (this.options.isLocal(info.id)) return undefined; // its pool ends it, and its deliveries go back
    return this.failover.declaredDead(info.id, info.lastHeartbeat, held, info.heartbeatIntervalMs);
  }

  private workerEvent(event: WorkerEvent, known: boolean): void {
    const id = event.info.id;
    if (event.kind === "stopped") {
      this.held.forget(id);
      return;
    }
    if (this.options.registry.isTombstoned(id)) {
      if (event.kind === "heartbeat" && !this.options.isLocal(id)) {
        void this.failover.lateHeartbeat(id, event.info.heartbeatIntervalMs ?? 1000);
      }
      return;
    }
    if (event.kind === "heartbeat") {
      this.held.heartbeat(id, event.held);
      if (!known) this.checkTimings(event.info);
    }
  }

  private fencedElsewhere(workerId: string): void {
    if (this.failover.isFenced(workerId)) return; // this coordinator's own fence, heard back
    this.failover.heard(workerId);
    this.held.forget(workerId);
    const info = this.options.registry.markDead(workerId);
    if (info) this.options.onDeclaredElsewhere(info);
  }

  /** Warns once per pool when a worker's heartbeat interval is too long for workerTimeoutMs. */
  private checkTimings(info: WorkerInfo): void {
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
