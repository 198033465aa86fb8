/**
 * Where the coordinator's worker count lives. With local handlers, it is this process's pool.
 * Without (a pure client), it is the cluster: the pools that heartbeat on the transport, each sent
 * a `scale` command for its share of the target (a pool keeps within its own min/max).
 */
import type { Transport } from "../transports/transport.js";
import { encode } from "./codec.js";
import { queuesServedBy, subjects } from "./names.js";
import type { TransportWorkerRegistry } from "./registry.js";
import type { WorkerPool } from "./worker-pool.js";

export class ClusterScaler {
  constructor(
    private readonly pool: WorkerPool,
    private readonly registry: TransportWorkerRegistry,
    private readonly transport: Transport,
    private readonly queueName: string,
  ) {}

  /** True when this coordinator scales its own workers (it has handlers). */
  get local(): boolean {
    return this.pool.handlerTable.size > 0;
  }

  /** Live workers per remote pool. */
  remotePools(): Map<string, number> {
    const pools = new Map<string, number>();
    for (const w of this.registry.list()) {
      if (w.poolId === undefined || w.poolId === this.pool.id || w.status === "stopped") continue;
      pools.set(w.poolId, (pools.get(w.poolId) ?? 0) + 1);
    }
    return pools;
  }

  /** The worker count being scaled: local workers, or the cluster's. */
  count(): number {
    if (this.local) return this.pool.workerCount;
    let n = 0;
    for (const c of this.remotePools().values()) n += c;
    return n;
  }

  /** Sets the worker count; remote pools get an even share each. */
  async scaleTo(workers: number): Promise<void> {
    if (this.local) return this.pool.scale(workers);
    const pools = [...this.remotePools().keys()].sort();
    for (let i = 0; i < pools.length; i++) {
      const share = Math.floor(workers / pools.length) + (i < workers % pools.length ? 1 : 0);
      const body = encode(
        { v: 1, kind: "scale", poolId: pools[i], workers: share },
        this.transport.maxPayloadBytes,
      );
      await this.transport.publish(subjects.control, body);
    }
  }

  /** Asks remote pools (one, or all) to drain and stop. */
  async drain(poolId?: string): Promise<void> {
    const command = poolId === undefined ? { v: 1, kind: "drain" } : { v: 1, kind: "drain", poolId };
    await this.transport.publish(subjects.control, encode(command, this.transport.maxPayloadBytes));
  }

  /** Every work queue whose depth counts for scaling: submitted to, or served by a known worker. */
  queues(submitted: readonly string[]): string[] {
    const queues = new Set(submitted);
    for (const q of queuesServedBy(this.queueName, this.pool.handlerTable.types, this.pool.workerTags))
      queues.add(q);
    for (const w of this.registry.list())
      for (const q of queuesServedBy(this.queueName, w.types, w.tags)) queues.add(q);
    return [...queues];
  }
}
