/**
 * Entity mailboxes on NATS JetStream 2.9: a work-queue stream per box, a subject per partition,
 * an owner lease per partition in KV (see nats-partition-claim.ts for why a lease and a consumer
 * per holder epoch, and not competing pulls). Delayed messages (durable timers) wait on the box's
 * timer subject, pulled by every holder of the box: one that is due is appended to its partition
 * (de-duplicated by its stream sequence, so a pump that dies between the two steps does not
 * append it twice within the duplicate window), one that is not is nak'ed for the rest of its delay.
 */

import {
  type ConsumerMessages,
  JetStreamApiError,
  type JetStreamClient,
  type JsMsg,
  jetstream,
  StorageType,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { headers as natsHeaders, nuid } from "@nats-io/transport-node";
import { ConnectionError, describeThrown, PayloadTooLargeError, PublishError } from "../../src/errors.js";
import {
  assertPartition,
  type EntityMailbox,
  type HoldOptions,
  type MailboxHandler,
  type MailboxSendOptions,
  type PartitionHold,
} from "../entity-mailbox.js";
import type { Bytes } from "../transport.js";
import { EntityNames, EntityTopology } from "./nats-entity-topology.js";
import { NatsPartitionClaim } from "./nats-partition-claim.js";
import type { NatsEntityLink } from "./nats-state-store.js";

const DUE_HEADER = "Fa-Due";
const PARTITION_HEADER = "Fa-Partition";
/** Longest nak delay asked of the server at once (a timer due later comes back and is nak'ed again). */
const MAX_NAK_MS = 3_600_000;

interface Connected {
  js: JetStreamClient;
  topology: EntityTopology;
  leases: KV;
}

export class NatsEntityMailbox implements EntityMailbox {
  private connected?: Promise<Connected>;
  private readonly claims = new Set<NatsPartitionClaim>();
  private readonly pumps = new Map<string, Promise<ConsumerMessages | undefined>>();
  private closed = false;

  constructor(
    private readonly link: () => NatsEntityLink,
    private readonly onError: (error: unknown, what: string) => void,
  ) {}

  async send(
    box: string,
    partitions: number,
    partition: number,
    body: Bytes,
    options?: MailboxSendOptions,
  ): Promise<void> {
    const id = options?.id ?? nuid.next();
    await this.persistently(async () => {
      const c = await this.prepare(box, partitions, partition, body);
      await this.publish(c, c.topology.names.partition(box, partition), body, id);
    });
  }

  async sendLater(
    box: string,
    partitions: number,
    partition: number,
    body: Bytes,
    delayMs: number,
    options?: MailboxSendOptions,
  ): Promise<void> {
    const id = options?.id ?? nuid.next();
    const due = String(Date.now() + Math.max(0, Math.round(delayMs)));
    await this.persistently(async () => {
      const c = await this.prepare(box, partitions, partition, body);
      const h = natsHeaders();
      h.set(DUE_HEADER, due);
      h.set(PARTITION_HEADER, String(partition));
      await this.publish(c, c.topology.names.timers(box), body, id, h);
    });
  }

  /**
   * Runs a send again (same message id: stored once) while it fails with a retryable error, as an
   * enqueue is: at least `publishAttempts` tries and `publishTimeoutMs × publishAttempts` in all,
   * with growing pauses (a cluster electing a stream's leader, or a minority, answers nothing).
   */
  private async persistently(send: () => Promise<void>): Promise<void> {
    const { timeoutMs, publishAttempts } = this.link();
    const giveUpAt = Date.now() + timeoutMs * publishAttempts;
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (error) {
        const retryable = (error as { retryable?: unknown }).retryable === true;
        if (this.closed || !retryable || (attempt >= publishAttempts && Date.now() >= giveUpAt)) throw error;
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  }

  async hold(
    box: string,
    partitions: number,
    partition: number,
    onMessage: MailboxHandler,
    options: HoldOptions,
  ): Promise<PartitionHold> {
    const c = await this.prepare(box, partitions, partition);
    this.pump(c, box);
    const claim = new NatsPartitionClaim(
      box,
      partition,
      c.leases,
      c.js,
      c.topology,
      onMessage,
      options,
      (error) => this.onError(error, `entity partition ${partition} of "${box}"`),
    );
    this.claims.add(claim);
    const release = claim.release.bind(claim);
    claim.release = async () => {
      this.claims.delete(claim);
      await release();
    };
    await claim.start();
    return claim;
  }

  async depth(box: string, partitions: number, partition: number): Promise<number> {
    assertPartition(box, partitions, partition);
    const c = await this.connection();
    return c.topology.depth(box, partitions, partition);
  }

  async remove(box: string, partitions: number): Promise<void> {
    assertPartition(box, partitions);
    const c = await this.connection();
    for (const claim of [...this.claims]) await claim.release();
    const pump = this.pumps.get(box);
    this.pumps.delete(box);
    await (await pump?.catch(() => undefined))?.close().catch(() => {});
    await c.topology.remove(box);
    for (let p = 0; p < partitions; p++)
      await c.leases.purge(c.topology.names.leaseKey(box, p)).catch(() => {});
  }

  /** Stops every claim and timer pump (the transport is closing). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.claims].map((claim) => claim.release()));
    for (const pump of this.pumps.values())
      await (await pump.catch(() => undefined))?.close().catch(() => {});
    this.pumps.clear();
  }

  /** In a cluster, consumer `consumer` of `stream` has a new leader (see NatsPartitionClaim). */
  onLeaderElected(stream: string, consumer: string): void {
    void this.connected
      ?.then((c) => {
        for (const claim of this.claims)
          if (c.topology.names.stream(claim.box) === stream) claim.leaderElected(consumer);
      })
      .catch(() => {});
  }

  /** After a reconnect: the server may have lost the streams; declare them again on next use. */
  reconnected(): void {
    void this.connected?.then((c) => c.topology.invalidate());
  }

  /**
   * The connection dropped: a message the server sent may never have arrived, and JetStream would
   * deliver the ones after it first (the lost one only after its ack wait). Every claim lets go of
   * its consumer; once back, it makes a new one, which starts at the first unacked message.
   */
  disconnected(): void {
    for (const claim of this.claims) claim.connectionLost();
  }

  private async prepare(
    box: string,
    partitions: number,
    partition: number,
    body?: Bytes,
  ): Promise<Connected> {
    assertPartition(box, partitions, partition);
    if (body !== undefined) {
      const limit = this.link().maxPayloadBytes;
      if (body.byteLength > limit) throw new PayloadTooLargeError(body.byteLength, limit, "entity message");
    }
    const c = await this.connection();
    await c.topology.ensure(box, partitions);
    return c;
  }

  private connection(): Promise<Connected> {
    this.connected ??= (async () => {
      const link = this.link();
      const js = jetstream(link.nc, { timeout: link.timeoutMs });
      const topology = new EntityTopology(await js.jetstreamManager(), new EntityNames(link.namespace), link);
      const leases = await new Kvm(js).create(topology.names.leaseBucket, {
        history: 1,
        storage: link.storage === "memory" ? StorageType.Memory : StorageType.File,
        replicas: link.replicas,
      });
      return { js, topology, leases };
    })().catch((error: unknown) => {
      this.connected = undefined;
      throw new ConnectionError(`Could not set up entity mailboxes on NATS: ${describeThrown(error)}.`, {
        cause: error,
        retryable: true,
      });
    });
    return this.connected;
  }

  private async publish(
    c: Connected,
    subject: string,
    body: Bytes,
    msgID: string,
    headers = natsHeaders(),
  ): Promise<void> {
    try {
      await c.js.publish(subject, body, { msgID, headers });
    } catch (error) {
      // The server refused it (an API error other than "unavailable"): sending it again won't help.
      const refused = error instanceof JetStreamApiError && error.status !== 503;
      throw new PublishError(
        `Could not append to the entity mailbox subject "${subject}": ${describeThrown(error)}.`,
        { cause: error, retryable: !refused },
      );
    }
  }

  /** Starts pulling the box's timers (once per box and process). */
  private pump(c: Connected, box: string): void {
    if (this.pumps.has(box) || this.closed) return;
    const started = (async () => {
      const consumer = await c.js.consumers.get(c.topology.names.stream(box), "timers");
      return consumer.consume({ max_messages: 256, callback: (msg) => void this.fire(c, box, msg) });
    })().catch((error: unknown) => {
      this.pumps.delete(box);
      this.onError(error, `the timers of "${box}"`);
      return undefined;
    });
    this.pumps.set(box, started);
  }

  private async fire(c: Connected, box: string, msg: JsMsg): Promise<void> {
    const due = Number(msg.headers?.get(DUE_HEADER));
    const partition = Number(msg.headers?.get(PARTITION_HEADER));
    if (!Number.isFinite(due) || !Number.isInteger(partition) || partition < 0) {
      msg.term("not a timer message");
      return;
    }
    const wait = due - Date.now();
    if (wait > 0) {
      msg.nak(Math.min(wait, MAX_NAK_MS));
      return;
    }
    try {
      await this.publish(
        c,
        c.topology.names.partition(box, partition),
        msg.data,
        `fa-tm-${msg.info.streamSequence}`,
      );
      msg.ack();
    } catch (error) {
      msg.nak(1000);
      this.onError(error, `a timer of "${box}"`);
    }
  }
}
