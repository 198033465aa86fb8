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
    // The new consumer starts above the old one's ack floor, not at the stream's first message: in
    // a cluster, messages acked below the floor can stay in the work-queue stream after a leader
    // change (their removal was lost), and delivering them again would re-apply events older than
    // an entity's de-duplication window (seen: 145 of one id's events applied twice). Above the
    // floor at most `inFlight` acked messages come again, which the window recognises.
    let start = 0;
    if (previous !== undefined && previous !== name) {
      start = Math.max(start, await this.floorOf(stream, previous));
      await this.deleteConsumer(stream, previous);
    }
    const config = {
      durable_name: name,
      filter_subject: subject,
      ack_policy: AckPolicy.Explicit,
      ...(start > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start + 1 }
        : { deliver_policy: DeliverPolicy.All }),
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
        if (info.config.filter_subject === subject && info.name !== name) {
          start = Math.max(start, info.ack_floor.stream_seq);
          await this.deleteConsumer(stream, info.name);
        }
      }
      if (start > 0)
        Object.assign(config, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start + 1 });
      await this.jsm.consumers.add(stream, config);
    }
  }

  /**
   * The stream sequence below which consumer `name` has every message acked; 0 when it is gone,
   * or cannot answer (no leader: its replicas lost their majority). Then the new consumer starts at
   * the stream's first message, as it always did, rather than waiting on the old one's Raft group.
   */
  private async floorOf(stream: string, name: string): Promise<number> {
    try {
      return (await this.jsm.consumers.info(stream, name)).ack_floor.stream_seq;
    } catch {
      return 0;
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
