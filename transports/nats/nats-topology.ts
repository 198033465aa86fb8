/**
 * The JetStream objects behind a queue: one stream (work-queue retention) with a subject per
 * priority level, and one durable pull consumer per level. Created on first use and remembered;
 * checked again (`verify`) when a publish or a pull finds nobody answering, and created again
 * only if the server says they are gone (a server that lost its store), never just because a
 * leader is being elected or a request timed out: in a cluster, that would make every publish
 * wait on the meta leader, which may be the node that just died.
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { errors as natsErrors, RequestError } from "@nats-io/transport-node";
import { describeThrown, TransportError } from "../../src/errors.js";
import { consumerNameOf, type NatsNames, PRIORITY_LEVELS } from "./nats-names.js";
import type { ResolvedNatsOptions } from "./nats-options.js";

export interface QueueTopology {
  queue: string;
  stream: string;
  /** By level index. */
  subjects: string[];
  consumers: string[];
}

const STREAM_IN_USE = 10058;
const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;
/**
 * "Subjects overlap with an existing stream": what NATS 2.9 also answers the second of two
 * processes creating the same stream at the same moment (the first one's is not visible by its
 * name yet). When the stream of that name then exists, it is ours: take it.
 */
const SUBJECTS_OVERLAP = 10065;
/**
 * JetStream API errors that a cluster gives while it elects a leader or gathers its peers: "no
 * suitable peers for placement" (10005: a node is down or not known yet), "JetStream system
 * temporarily unavailable" (10008), "JetStream cluster can not handle request" (10009).
 */
const TRANSIENT_CODES = new Set([10005, 10008, 10009]);

export class NatsTopology {
  private readonly ready = new Map<string, Promise<QueueTopology>>();
  private readonly verifying = new Map<string, Promise<void>>();
  private stopped = false;
  /** Streams this transport created or used (deleted on close with streamsOnClose "delete"). */
  readonly used = new Set<string>();

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly names: NatsNames,
    private readonly options: ResolvedNatsOptions,
  ) {}

  /** The queue's stream and consumers, created if missing. Concurrent calls share one attempt. */
  ensure(queue: string): Promise<QueueTopology> {
    let p = this.ready.get(queue);
    if (!p) {
      p = this.create(queue);
      this.ready.set(queue, p);
      p.catch(() => {
        if (this.ready.get(queue) === p) this.ready.delete(queue);
      });
    }
    return p;
  }

  /** Forget what was ensured (one queue, or all). */
  invalidate(queue?: string): void {
    if (queue === undefined) this.ready.clear();
    else this.ready.delete(queue);
  }

  /**
   * Checks that the queue's stream and consumers still exist, and creates them again when the
   * server says they do not. No answer, a timeout or a leader election leaves them as they are
   * (the caller looks again when something fails next). Concurrent calls share one check.
   */
  verify(queue: string): Promise<void> {
    let p = this.verifying.get(queue);
    if (!p) {
      p = this.check(queue).finally(() => this.verifying.delete(queue));
      this.verifying.set(queue, p);
    }
    return p;
  }

  /** Ends the retries of creations under way (on close). */
  stop(): void {
    this.stopped = true;
  }

  describe(queue: string): QueueTopology {
    return {
      queue,
      stream: this.names.streamName(queue),
      subjects: this.names.workSubjects(queue),
      consumers: PRIORITY_LEVELS.map((_, level) => consumerNameOf(level)),
    };
  }

  /** Messages waiting in the queue: the consumers' pending counts (not their unsettled ones). */
  async depth(queue: string): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const t = await this.ensure(queue);
      try {
        const infos = await Promise.all(t.consumers.map((c) => this.jsm.consumers.info(t.stream, c)));
        return infos.reduce((sum, info) => sum + info.num_pending, 0);
      } catch (error) {
        if (attempt === 0 && isNotFound(error)) {
          this.invalidate(queue);
          continue;
        }
        throw new TransportError(`Could not read the depth of queue "${queue}": ${describeThrown(error)}`, {
          cause: error,
          retryable: true,
        });
      }
    }
  }

  /** Messages waiting per priority level, keyed by the level's lowest priority value. */
  async depthByLevel(queue: string, levels: readonly number[]): Promise<Record<number, number>> {
    const t = await this.ensure(queue);
    try {
      const infos = await Promise.all(t.consumers.map((c) => this.jsm.consumers.info(t.stream, c)));
      const out: Record<number, number> = {};
      infos.forEach((info, level) => {
        out[levels[level] as number] = info.num_pending;
      });
      return out;
    } catch (error) {
      if (isNotFound(error)) this.invalidate(queue);
      throw new TransportError(`Could not read the depth of queue "${queue}": ${describeThrown(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  /** Deletes the streams this transport used (and their consumers). */
  async deleteUsed(): Promise<void> {
    await Promise.all([...this.used].map((s) => this.deleteStream(s)));
    this.used.clear();
    this.ready.clear();
  }

  /** Deletes every stream of the namespace (tests, teardown scripts). */
  async deleteNamespace(): Promise<void> {
    const names: string[] = [];
    for await (const name of this.jsm.streams.names(this.names.workWildcard)) names.push(name);
    await Promise.all(names.map((s) => this.deleteStream(s)));
    this.used.clear();
    this.ready.clear();
  }

  private async deleteStream(stream: string): Promise<void> {
    try {
      await this.jsm.streams.delete(stream);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  private async check(queue: string): Promise<void> {
    const t = this.describe(queue);
    try {
      await this.jsm.streams.info(t.stream);
      await Promise.all(t.consumers.map((c) => this.jsm.consumers.info(t.stream, c)));
    } catch (error) {
      if (!isNotFound(error) || this.stopped) return;
      this.invalidate(queue);
      await this.ensure(queue);
    }
  }

  /**
   * Creates the queue's stream and consumers. A cluster that is electing a leader or still
   * gathering its peers is waited for, as long as a publish would wait (publishTimeoutMs ×
   * publishAttempts); anything else fails at once.
   */
  private async create(queue: string): Promise<QueueTopology> {
    const o = this.options;
    const giveUpAt = Date.now() + o.publishTimeoutMs * o.publishAttempts;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.createOnce(queue);
      } catch (error) {
        if (this.stopped || !isTransient(error) || Date.now() >= giveUpAt) throw error;
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)).unref());
      }
    }
  }

  private async createOnce(queue: string): Promise<QueueTopology> {
    const t = this.describe(queue);
    const o = this.options;
    const stream = {
      name: t.stream,
      subjects: t.subjects,
      retention: RetentionPolicy.Workqueue,
      storage: o.storage === "memory" ? StorageType.Memory : StorageType.File,
      num_replicas: o.replicas,
      duplicate_window: o.duplicateWindowMs * 1_000_000,
      discard: DiscardPolicy.Old,
      max_msgs: -1,
      max_bytes: -1,
      max_age: 0,
    };
    try {
      try {
        await this.jsm.streams.add(stream);
      } catch (error) {
        const code = error instanceof JetStreamApiError ? error.code : undefined;
        if (code === SUBJECTS_OVERLAP) {
          // Made by another process at the same moment? Then it exists under our name by now.
          await new Promise((r) => setTimeout(r, 50).unref());
          await this.jsm.streams.info(t.stream).catch(() => {
            throw error;
          });
        } else if (code === STREAM_IN_USE) {
          // It exists with other settings (e.g. a changed duplicate window): bring it in line.
          await this.jsm.streams.update(t.stream, stream);
        } else throw error;
      }
      this.used.add(t.stream);
      await Promise.all(
        t.consumers.map((durable, level) =>
          this.jsm.consumers.add(t.stream, {
            durable_name: durable,
            filter_subject: t.subjects[level] as string,
            ack_policy: AckPolicy.Explicit,
            deliver_policy: DeliverPolicy.All,
            replay_policy: ReplayPolicy.Instant,
            ack_wait: o.ackWaitMs * 1_000_000,
            // The framework dead-letters poison tasks by delivery count; the transport caps the rest.
            max_deliver: -1,
            max_ack_pending: o.maxAckPending,
            // Only when asked for: JetStream refuses to change it on an existing consumer.
            ...(o.maxWaiting === undefined ? {} : { max_waiting: o.maxWaiting }),
            num_replicas: 0,
          }),
        ),
      );
    } catch (error) {
      const hint = isTransient(error)
        ? `JetStream did not answer in time, or its cluster is electing a leader or has fewer than ${o.replicas} node(s) up ` +
          "(replicas); it was tried again for publishTimeoutMs × publishAttempts."
        : "Check that the server runs with JetStream enabled (-js) and has room for another stream.";
      throw new TransportError(
        `Could not create the JetStream stream "${t.stream}" of queue "${queue}": ${describeThrown(error)}. ${hint}`,
        { cause: error, retryable: true },
      );
    }
    return t;
  }
}

/** An error a JetStream cluster gives while a leader is elected or a node is away: try again. */
export function isTransient(error: unknown, depth = 0): boolean {
  if (error instanceof JetStreamApiError) return error.status === 503 || TRANSIENT_CODES.has(error.code);
  if (error instanceof natsErrors.TimeoutError) return true;
  if (error instanceof RequestError) return error.isNoResponders();
  // Wrapped: ours (TransportError), or "jetstream is not enabled" caused by no API responder.
  return error instanceof Error && depth < 4 && isTransient(error.cause, depth + 1);
}

export function isNotFound(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === STREAM_NOT_FOUND || error.code === CONSUMER_NOT_FOUND)
  );
}
