/**
 * The JetStream objects of entity mailboxes, in names no work queue or fan-out subject can reach:
 *
 *   stream     <ns>~ent~<box>          "~" appears in no stream name of the work queues
 *   subjects   <ns>.ent.<box>.<p>      one per partition; work queues live under <ns>.work., fan-out
 *              <ns>.ent.<box>.t        under <ns>.fan.: the second token keeps the trees apart
 *   consumers  p<p>-<epoch>            one per partition and holder epoch (its lease revision)
 *              timers                  shared by every holder of the box (competing)
 *   leases     KV bucket fa_lease_<ns>, key <box>.<p>
 *
 * The stream has work-queue retention: a message leaves once acked. Its description records the
 * partition count, so a process defining the type with another count is refused.
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { ConfigError, describeThrown, TransportError } from "../../src/errors.js";
import type { NatsEntityLink } from "./nats-state-store.js";

const STREAM_IN_USE = 10058;
const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;
/** A filtered consumer overlapping another on a work-queue stream. */
export const CONSUMER_NOT_UNIQUE = 10100;

export class EntityNames {
  constructor(readonly namespace: string) {}

  stream(box: string): string {
    return `${this.namespace}~ent~${box}`;
  }

  partition(box: string, p: number): string {
    return `${this.namespace}.ent.${box}.${p}`;
  }

  timers(box: string): string {
    return `${this.namespace}.ent.${box}.t`;
  }

  get leaseBucket(): string {
    return `fa_lease_${this.namespace}`;
  }

  leaseKey(box: string, p: number): string {
    return `${box}.${p}`;
  }
}

const describeBox = (box: string, partitions: number) =>
  `fastagentic entity mailbox "${box}", ${partitions} partitions`;

export class EntityTopology {
  private readonly ready = new Map<string, Promise<void>>();

  constructor(
    private readonly jsm: JetStreamManager,
    readonly names: EntityNames,
    private readonly link: NatsEntityLink,
  ) {}

  /** The box's stream (and timer consumer), created if missing; its partition count checked. */
  ensure(box: string, partitions: number): Promise<void> {
    const key = `${box}/${partitions}`;
    let p = this.ready.get(key);
    if (!p) {
      p = this.create(box, partitions);
      this.ready.set(key, p);
      p.catch(() => this.ready.delete(key));
    }
    return p;
  }

  /** Forgets what was ensured (after a reconnect, a server may have lost it). */
  invalidate(): void {
    this.ready.clear();
  }

  async remove(box: string): Promise<void> {
    for (const key of [...this.ready.keys()]) if (key.startsWith(`${box}/`)) this.ready.delete(key);
    try {
      await this.jsm.streams.delete(this.names.stream(box));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Messages stored for one partition (waiting or handed over and not yet acked). */
  async depth(box: string, partitions: number, p: number): Promise<number> {
    await this.ensure(box, partitions);
    const subject = this.names.partition(box, p);
    const info = await this.jsm.streams.info(this.names.stream(box), { subjects_filter: subject });
    return info.state.subjects?.[subject] ?? 0;
  }

  /** Creates the consumer of one partition for a holder epoch, deleting any other on its subject first. */
  async consumerFor(
    box: string,
    p: number,
    name: string,
    previous: string | undefined,
    inFlight: number,
    stillHeld: () => Promise<boolean>,
  ): Promise<void> {
    const stream = this.names.stream(box);
    const subject = this.names.partition(box, p);
    // The new consumer starts at the partition's first stored message: a work-queue stream takes
    // no other start (2.9 refuses a start sequence: "consumer must be deliver all on workqueue
    // stream"; trying one deleted the old consumer and failed, leaving the partition unconsumed
    // until the next lease tick). In a cluster, messages acked before a leader change can stay in
    // the stream (their removal was lost) and come again: the entity skips every delivery whose
    // stream sequence is at or below the one stored with its state (entity-step.ts `sq`).
    // Not while the stream has no leader (this info throws until one exists; the claim tries again
    // at its next tick). A guard only: a consumer deleted and re-created during a cluster's
    // elections was once left counted by the stream ("filtered consumer not unique" for every later
    // one, 60 s+), and this check alone did not prevent it (see NatsPartitionClaim's header).
    await this.jsm.streams.info(stream);
    if (previous !== undefined && previous !== name) await this.deleteConsumer(stream, previous);
    const config = {
      durable_name: name,
      filter_subject: subject,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 60_000_000_000,
      max_deliver: -1,
      max_ack_pending: inFlight,
      num_replicas: 0,
    };
    try {
      await this.jsm.consumers.add(stream, config);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === CONSUMER_NOT_UNIQUE)) throw error;
      // A consumer of an older epoch the lease does not name (its holder died mid-way): remove it,
      // unless the lease moved on meanwhile (then that consumer is the new holder's).
      if (!(await stillHeld())) throw error;
      for await (const info of this.jsm.consumers.list(stream)) {
        if (info.config.filter_subject === subject && info.name !== name)
          await this.deleteConsumer(stream, info.name);
      }
      await this.jsm.consumers.add(stream, config);
    }
  }

  async deleteConsumer(stream: string, name: string): Promise<void> {
    try {
      await this.jsm.consumers.delete(stream, name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  private async create(box: string, partitions: number): Promise<void> {
    const name = this.names.stream(box);
    const description = describeBox(box, partitions);
    const config = {
      name,
      subjects: [`${this.names.namespace}.ent.${box}.*`],
      retention: RetentionPolicy.Workqueue,
      storage: this.link.storage === "memory" ? StorageType.Memory : StorageType.File,
      num_replicas: this.link.replicas,
      duplicate_window: 120_000_000_000,
      discard: DiscardPolicy.Old,
      max_msgs: -1,
      max_bytes: -1,
      max_age: 0,
      description,
    };
    try {
      try {
        await this.jsm.streams.add(config);
      } catch (error) {
        if (!(error instanceof JetStreamApiError && error.code === STREAM_IN_USE)) throw error;
        const info = await this.jsm.streams.info(name);
        if (info.config.description !== description) {
          throw new ConfigError(
            `The entity mailbox "${box}" exists with ${info.config.description?.replace(/.*, /, "") ?? "another layout"}, ` +
              `not ${partitions} partitions. Every process must define the entity with the same partitions option ` +
              "(changing it needs the mailbox drained and removed first).",
          );
        }
      }
      await this.jsm.consumers.add(name, {
        durable_name: "timers",
        filter_subject: this.names.timers(box),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: 30_000_000_000,
        max_deliver: -1,
        max_ack_pending: -1,
        num_replicas: 0,
      });
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new TransportError(
        `Could not create the JetStream stream "${name}" of the entity mailbox "${box}": ${describeThrown(error)}.`,
        { cause: error, retryable: true },
      );
    }
  }
}

export function isNotFound(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === STREAM_NOT_FOUND || error.code === CONSUMER_NOT_FOUND)
  );
}
