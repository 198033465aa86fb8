/**
 * One way of doing the task round trip: a producer sends `{ x }`, a worker (in another process,
 * except on the in-memory transport) returns `x * 2`, the producer gets it. Each path brings both
 * ends; bench/worker-process.ts runs the worker end in a child process.
 */

export type PathId =
  | "fa-memory"
  | "fa-nats"
  | "fa-amqp"
  | "fa-amqp-quorum"
  | "raw-jetstream"
  | "raw-amqp"
  | "raw-nats-core"
  | "bullmq"
  | "fa-amqp-transport"
  | "raw-amqp-twin"
  | "ent-nats"
  | "ent-amqp";

/** What both ends of a path agree on; passed to worker processes as JSON. */
export interface PathSpec {
  /** Unique per run and path: the namespace, stream, queue or subject prefix. */
  ns: string;
  /** Deliveries a worker process holds at once (maxConcurrentTasks / prefetch). */
  concurrency: number;
  natsUrl: string;
  amqpUrl: string;
  redisUrl: string;
  /** Failover runs: the handler never returns (the process is killed while holding tasks). */
  hold?: boolean;
}

export interface PathWorker {
  /** Tasks this worker has started (for the failover measure). */
  started(): number;
  close(): Promise<void>;
}

export interface PathClient {
  /** One round trip: resolves with the worker's `x * 2`. */
  call(x: number): Promise<number>;
  /** Ends the client and deletes what the run created on the broker. */
  close(): Promise<void>;
}

export interface BenchPath {
  id: PathId;
  label: string;
  kind: "fastagentic" | "raw" | "peer";
  /** Which broker process does the work (for broker CPU): none for in-memory. */
  broker?: "nats" | "amqp" | "redis";
  /** The raw client with the same durability, for the ratios. */
  baseline?: PathId;
  /** True: the client runs the workers itself, in this process. */
  inProcess?: boolean;
  /**
   * True: left out of a full run. For splitting a gap (`--only=…`, bench/pair-latency.ts,
   * bench/latency-blocks.ts), not a result of its own.
   */
  extra?: boolean;
  /** Throws (with a reason) when the transport or broker cannot be used. */
  probe(spec: PathSpec): Promise<void>;
  /** The worker end: runs in a child process (bench/worker-process.ts). */
  worker(spec: PathSpec): Promise<PathWorker>;
  client(spec: PathSpec): Promise<PathClient>;
}

/** Bounds a promise: rejects with `what` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A map of pending round trips by id, resolved by whatever carries the results back. */
export class ReplyMap {
  private readonly pending = new Map<number | string, (y: number) => void>();

  wait(id: number | string): Promise<number> {
    return new Promise<number>((resolve) => this.pending.set(id, resolve));
  }

  resolve(id: number | string, y: number): void {
    const done = this.pending.get(id);
    if (done === undefined) return;
    this.pending.delete(id);
    done(y);
  }

  get size(): number {
    return this.pending.size;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decodeJson<T>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes)) as T;
}
