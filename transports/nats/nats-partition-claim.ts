/**
 * One claim on one partition of a NATS entity mailbox: an owner lease in JetStream KV, and while
 * it holds the lease, a pull consumer of the partition's subject made for this holder epoch.
 *
 * Lease: the key `<box>.<p>` names the holder and its consumer. Free (absent or deleted): `create`
 * takes it. Held by another: its revision is watched, and once it has not moved for failoverMs (on
 * this process's own clock, so clocks need not agree) `update(…, revision)` takes it over. The
 * holder renews it (an update on its own revision) every third of failoverMs; a refused renewal, or
 * none getting through for failoverMs, means it lost the partition.
 *
 * Order across a hand-over: the new holder deletes the old holder's consumer and creates its own,
 * which starts at the partition's oldest message still stored; on a work-queue stream that is the
 * first message nobody acked, so unacked messages come first, in order. A frozen old holder that
 * wakes finds its consumer gone (its pulls and acks go nowhere) and its lease moved on.
 *
 * Leader change (cluster): when its consumer's leader dies, the pull it held is gone; nats.js's
 * consume() finds out only after two missed idle heartbeats, then waits a full pull expiry between
 * checks that fail while the cluster elects. The holder opens a new pull on the same consumer at
 * once on the consumer's leader-election advisory (or on missed heartbeats). It does not start a
 * new epoch there: deleting a consumer and creating the next one during elections left (2.9.10)
 * a consumer the stream still counted, so every later one was refused as "filtered consumer not
 * unique" and the partition stayed unconsumed (seen in 2 of 3 cluster chaos runs).
 */
import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { describeThrown, TransportError } from "../../src/errors.js";
import type { HoldOptions, MailboxHandler, PartitionHold } from "../entity-mailbox.js";
import type { EntityTopology } from "./nats-entity-topology.js";
import { isWrongLastSequence } from "./nats-state-store.js";

interface LeaseValue {
  holder: string;
  claim: string;
  consumer: string;
}

let claims = 0;

/** A consumer's first leader election follows its creation: not a leader change to react to. */
const ELECTION_GRACE_MS = 2000;
/** A pull lasts this long; its idle heartbeat is every half of it, and two missed open a new pull. */
const PULL_EXPIRES_MS = 10_000;

export class NatsPartitionClaim implements PartitionHold {
  private readonly claimId =
    `${process.pid.toString(36)}-${Date.now().toString(36)}-${(++claims).toString(36)}`;
  private state: "standby" | "holding" | "released" = "standby";
  private revision = 0;
  private lastRenewal = 0;
  private seen?: { revision: number; at: number };
  private messages?: ConsumerMessages;
  private generation = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private running?: Promise<void>;
  private consumer = "";
  private consumingSince = 0;
  private restarting = false;
  private pulls = 0;

  constructor(
    readonly box: string,
    readonly partition: number,
    private readonly kv: KV,
    private readonly js: JetStreamClient,
    private readonly topology: EntityTopology,
    private readonly onMessage: MailboxHandler,
    private readonly options: HoldOptions,
    private readonly onError: (error: unknown) => void,
  ) {}

  get holding(): boolean {
    return this.state === "holding";
  }

  /** Starts trying to hold (resolves after the first attempt). */
  async start(): Promise<void> {
    await this.tick();
  }

  async release(): Promise<void> {
    if (this.state === "released") return;
    const held = this.state === "holding";
    this.state = "released";
    clearTimeout(this.timer);
    await this.running?.catch(() => {});
    await this.stopConsuming();
    if (!held) return;
    try {
      // Its consumer goes with it; the next holder's starts at the first unacked message.
      await this.topology.deleteConsumer(this.topology.names.stream(this.box), this.consumerName);
      await this.kv.delete(this.key, { previousSeq: this.revision });
    } catch (error) {
      this.onError(error); // the next holder waits for the lease to expire instead
    }
  }

  private get key(): string {
    return this.topology.names.leaseKey(this.box, this.partition);
  }

  private get consumerName(): string {
    return `p${this.partition}-${this.revision}`;
  }

  private get renewEveryMs(): number {
    return Math.max(50, Math.floor(this.options.failoverMs / 3));
  }

  private schedule(ms: number): void {
    if (this.state === "released") return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private tick(): Promise<void> {
    this.running = (this.state === "holding" ? this.renew() : this.acquire()).catch((error: unknown) => {
      this.onError(error);
    });
    return this.running.then(() => this.schedule(this.renewEveryMs));
  }

  private async acquire(): Promise<void> {
    const entry = await this.kv.get(this.key);
    const now = Date.now();
    let previous: LeaseValue | undefined;
    let epoch: number;
    try {
      if (entry === null || entry.operation !== "PUT") {
        epoch = await this.kv.create(this.key, this.leaseValue(""));
      } else {
        previous = parseLease(entry.value);
        if (previous?.claim !== this.claimId) {
          if (this.seen?.revision !== entry.revision) {
            this.seen = { revision: entry.revision, at: now };
            return; // held by another: wait until it has gone quiet for failoverMs
          }
          if (now - this.seen.at < this.options.failoverMs) return;
        }
        epoch = await this.kv.update(this.key, this.leaseValue(""), entry.revision);
      }
      // The consumer is named after the epoch, and named in the lease before it exists, so a
      // successor can always find and delete it.
      const consumer = `p${this.partition}-${epoch}`;
      this.revision = await this.kv.update(this.key, this.leaseValue(consumer), epoch);
      this.lastRenewal = Date.now();
      if (this.state === "released") {
        await this.kv.delete(this.key, { previousSeq: this.revision }).catch(() => {});
        return;
      }
      await this.topology.consumerFor(
        this.box,
        this.partition,
        consumer,
        previous?.consumer,
        this.options.inFlight,
        () => this.stillHeld(),
      );
      this.consumer = consumer;
      this.state = "holding";
      await this.consume(consumer);
    } catch (error) {
      if (isWrongLastSequence(error)) return; // someone else was quicker: a standby again
      throw error;
    }
  }

  /** Whether the lease is still this claim's (checked before deleting another holder's consumer). */
  private async stillHeld(): Promise<boolean> {
    const entry = await this.kv.get(this.key);
    return (
      entry?.operation === "PUT" &&
      entry.revision === this.revision &&
      parseLease(entry.value)?.claim === this.claimId
    );
  }

  private async renew(): Promise<void> {
    try {
      this.revision = await this.kv.update(this.key, this.leaseValue(this.consumer), this.revision);
      this.lastRenewal = Date.now();
    } catch (error) {
      if (isWrongLastSequence(error)) {
        await this.lose(
          new TransportError(`the lease of partition ${this.partition} of "${this.box}" was taken over`),
        );
        return;
      }
      if (Date.now() - this.lastRenewal > this.options.failoverMs) {
        await this.lose(
          new TransportError(
            `the lease of partition ${this.partition} of "${this.box}" could not be renewed: ${describeThrown(error)}`,
          ),
        );
        return;
      }
      throw error;
    }
  }

  /** The connection dropped: stop using this epoch's consumer (see NatsEntityMailbox.disconnected). */
  connectionLost(): void {
    if (this.state !== "holding") return;
    void this.lose(
      new TransportError(`the NATS connection dropped under partition ${this.partition} of "${this.box}"`),
    );
  }

  /**
   * A consumer of this partition's stream has a new leader: if it is this epoch's consumer and not
   * its first election, pull again from the new leader (see the header).
   */
  leaderElected(consumer: string): void {
    if (this.state !== "holding" || consumer !== this.consumer) return;
    if (Date.now() - this.consumingSince < ELECTION_GRACE_MS) return;
    void this.repull();
  }

  /** Closes this epoch's pull and opens another on the same consumer (acks of taken messages stay valid). */
  private async repull(): Promise<void> {
    if (this.restarting || this.state !== "holding") return;
    this.restarting = true;
    try {
      const generation = this.generation;
      const old = this.messages;
      this.messages = undefined;
      this.pulls++; // its watch stops
      await old?.close().catch(() => {});
      if (this.state !== "holding" || generation !== this.generation) return;
      await this.pull(this.consumer, generation);
    } catch (error) {
      this.onError(error); // the next missed heartbeats, or the lease tick, try again
    } finally {
      this.restarting = false;
    }
  }

  private async lose(reason: Error): Promise<void> {
    this.state = "standby";
    this.seen = undefined;
    await this.stopConsuming();
    this.options.onReset(reason);
  }

  private async consume(name: string): Promise<void> {
    await this.pull(name, ++this.generation);
  }

  private async pull(name: string, generation: number): Promise<void> {
    const consumer = await this.js.consumers.get(this.topology.names.stream(this.box), name);
    const run = ++this.pulls;
    const messages = await consumer.consume({
      max_messages: Math.max(1, this.options.inFlight),
      expires: PULL_EXPIRES_MS,
      callback: (msg: JsMsg) => this.deliver(msg, generation),
    });
    this.messages = messages;
    this.consumingSince = Date.now();
    void this.watch(messages, generation, run);
  }

  /**
   * Its consumer deleted under it (a successor's, or by hand): it no longer holds the partition.
   * Its pull's heartbeats missed (its leader died unannounced): pull again.
   */
  private async watch(messages: ConsumerMessages, generation: number, run: number): Promise<void> {
    for await (const status of messages.status()) {
      if (generation !== this.generation || run !== this.pulls) return;
      if (status.type === "consumer_deleted" || status.type === "consumer_not_found") {
        await this.lose(
          new TransportError(`the consumer of partition ${this.partition} of "${this.box}" was deleted`),
        );
        return;
      }
      if (status.type === "heartbeats_missed") {
        void this.repull();
        return;
      }
    }
  }

  private deliver(msg: JsMsg, generation: number): void {
    if (generation !== this.generation || this.state !== "holding") return; // a lost epoch's message
    const claim = this;
    try {
      this.onMessage({
        partition: this.partition,
        body: msg.data,
        deliveryCount: msg.info.deliveryCount,
        seq: msg.info.streamSequence,
        ack() {
          if (generation === claim.generation) msg.ack();
        },
      });
    } catch {
      // A handler that throws has not taken the message: it comes again after the ack wait.
    }
  }

  private async stopConsuming(): Promise<void> {
    this.generation++;
    const messages = this.messages;
    this.messages = undefined;
    await messages?.close().catch(() => {});
  }

  private leaseValue(consumer: string): Uint8Array {
    const value: LeaseValue = { holder: this.options.holder, claim: this.claimId, consumer };
    return new TextEncoder().encode(JSON.stringify(value));
  }
}

function parseLease(bytes: Uint8Array): LeaseValue | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LeaseValue>;
    return typeof v.claim === "string" && typeof v.consumer === "string" ? (v as LeaseValue) : undefined;
  } catch {
    return undefined;
  }
}
