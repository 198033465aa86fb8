/**
 * Where workers are known. InMemoryWorkerRegistry is the seed's registry; TransportWorkerRegistry
 * is the same, fed by the heartbeats every worker publishes on the transport, so it lists every
 * worker of a cluster, in any process.
 */
import type { Subscription, Transport } from "../transports/transport.js";
import { type Clock, systemClock } from "./clock.js";
import { decodeWorkerEvent, type WorkerEvent } from "./codec.js";
import { UnknownTaskError } from "./errors.js";
import { subjects } from "./names.js";
import type { WorkerInfo, WorkerStatus } from "./types.js";

export interface WorkerQuery {
  status?: WorkerStatus;
  /** Workers carrying all of these tags. */
  tags?: string[];
  /** Workers with a handler for this task type. */
  type?: string;
}

export class InMemoryWorkerRegistry {
  protected readonly workers = new Map<string, WorkerInfo>();

  constructor(protected readonly clock: Clock = systemClock) {}

  async register(info: WorkerInfo): Promise<void> {
    this.workers.set(info.id, { ...info, lastHeartbeat: info.lastHeartbeat || this.clock.now() });
  }

  /** Records a sign of life; with `info`, also its latest state. */
  async heartbeat(workerId: string, info?: WorkerInfo): Promise<void> {
    const known = this.workers.get(workerId);
    if (!known && !info) throw new UnknownWorkerError(workerId);
    this.workers.set(workerId, { ...(known as WorkerInfo), ...info, lastHeartbeat: this.clock.now() });
  }

  async unregister(workerId: string): Promise<void> {
    this.workers.delete(workerId);
  }

  async get(workerId: string): Promise<WorkerInfo | undefined> {
    const info = this.workers.get(workerId);
    return info && { ...info };
  }

  async getWorkers(query: WorkerQuery = {}): Promise<WorkerInfo[]> {
    return this.list(query);
  }

  /** Whether a known worker has a handler for `type` (no copies: used on every submit). */
  serves(type: string): boolean {
    for (const info of this.workers.values()) if (info.types.includes(type)) return true;
    return false;
  }

  /** Synchronous listing (for stats). */
  list(query: WorkerQuery = {}): WorkerInfo[] {
    const out: WorkerInfo[] = [];
    for (const info of this.workers.values()) {
      if (query.status !== undefined && info.status !== query.status) continue;
      if (query.tags && !query.tags.every((t) => info.tags.includes(t))) continue;
      if (query.type !== undefined && !info.types.includes(query.type)) continue;
      out.push({ ...info });
    }
    return out;
  }

  get size(): number {
    return this.workers.size;
  }

  /** Removes and returns the workers whose last heartbeat is older than `timeoutMs`. */
  expire(timeoutMs: number): WorkerInfo[] {
    const now = this.clock.now();
    const dead: WorkerInfo[] = [];
    for (const [id, info] of this.workers) {
      if (now - info.lastHeartbeat > timeoutMs) {
        this.workers.delete(id);
        dead.push(info);
      }
    }
    return dead;
  }
}

export class UnknownWorkerError extends UnknownTaskError {
  override readonly code = "FA_UNKNOWN_WORKER" as "FA_UNKNOWN_TASK";
  constructor(readonly workerId: string) {
    super(workerId);
    this.message = `No worker with id "${workerId}" is registered; register(info) it first.`;
  }
}

export class TransportWorkerRegistry extends InMemoryWorkerRegistry {
  private subscription?: Subscription;
  private readonly tombstones = new Map<string, number>();
  private readonly listeners = new Set<(event: WorkerEvent, known: boolean) => void>();

  /**
   * Hears every worker event that reaches the registry; `known` is false for a worker it lists
   * for the first time and for one it already declared dead (then the event is not listed).
   */
  onWorkerEvent(listener: (event: WorkerEvent, known: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether the worker was declared dead (or left) here: its late heartbeats are not listed. */
  isTombstoned(workerId: string): boolean {
    return this.tombstones.has(workerId);
  }

  private readonly heartbeatListeners = new Set<(info: WorkerInfo) => void>();

  /** Calls `listener` with each worker's info as its heartbeats arrive; returns an unsubscribe. */
  onHeartbeat(listener: (info: WorkerInfo) => void): () => void {
    this.heartbeatListeners.add(listener);
    return () => this.heartbeatListeners.delete(listener);
  }

  constructor(
    private readonly transport: Transport,
    clock: Clock = systemClock,
  ) {
    super(clock);
  }

  /** Starts listening to worker heartbeats. */
  async start(): Promise<void> {
    if (this.subscription) return;
    await this.transport.connect();
    this.subscription = await this.transport.subscribe(subjects.workerEvents, (m) => {
      let event: ReturnType<typeof decodeWorkerEvent>;
      try {
        event = decodeWorkerEvent(m.body);
      } catch {
        return;
      }
      const id = event.info.id;
      const known = this.workers.has(id);
      if (event.kind === "stopped") {
        this.workers.delete(id);
        this.tombstones.set(id, this.clock.now());
      } else if (!this.tombstones.has(id)) {
        // (a late heartbeat from a worker that already left is not listed)
        this.workers.set(id, { ...event.info, lastHeartbeat: this.clock.now() });
      }
      for (const listener of this.listeners) listener(event, known);
      if (event.kind !== "stopped" && !this.tombstones.has(id)) {
        const info = this.workers.get(id);
        if (info) for (const listener of this.heartbeatListeners) listener(info);
      }
    });
  }

  async stop(): Promise<void> {
    await this.subscription?.unsubscribe();
    this.subscription = undefined;
  }

  /** Declares one worker dead now (another coordinator did): removed, and kept out like an expired one. */
  markDead(workerId: string): WorkerInfo | undefined {
    const info = this.workers.get(workerId);
    this.workers.delete(workerId);
    this.tombstones.set(workerId, this.clock.now());
    return info;
  }

  /** A worker declared dead stays out even if a late heartbeat arrives (a resumed zombie rejoins under a new id). */
  override expire(timeoutMs: number): WorkerInfo[] {
    const dead = super.expire(timeoutMs);
    const now = this.clock.now();
    for (const d of dead) this.tombstones.set(d.id, now);
    if (this.tombstones.size > 10_000) {
      for (const [id, at] of this.tombstones) if (now - at > 10 * timeoutMs) this.tombstones.delete(id);
    }
    return dead;
  }
}
