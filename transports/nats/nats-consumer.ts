/**
 * A competing consumer over one or more queues: at most `concurrency` unsettled deliveries, the
 * highest priority level first across all its queues (which source to pull from is LevelPuller's
 * job), unsettled deliveries returned when it stops, and pulling paused while the connection is
 * down, resumed at once when it is back (to whichever node of a cluster). A pull that fails oddly
 * (nobody answers: a server that lost its store, or a consumer whose leader is being elected)
 * pauses pulling briefly and has the streams and consumers checked, and created again if gone;
 * a consumer leader elected elsewhere has its pulls sent again at once.
 */
import type { Msg } from "@nats-io/transport-node";
import type { Consumer, DeliveryHandler } from "../transport.js";
import { type AckInfo, type DeliveryCorrections, NatsDelivery } from "./nats-delivery.js";
import { notBeforeOf } from "./nats-headers.js";
import type { ResolvedNatsOptions } from "./nats-options.js";
import type { Outbox } from "./nats-outbox.js";
import { LevelPuller, type PullOwner, type Source } from "./nats-pull.js";
import type { QueueTopology } from "./nats-topology.js";

/** What a consumer needs from its transport. */
export interface ConsumerLink {
  readonly nc: PullOwner["nc"];
  readonly outbox: Outbox;
  readonly options: ResolvedNatsOptions;
  readonly corrections: DeliveryCorrections;
  connected(): boolean;
  ensure(queue: string): Promise<QueueTopology>;
  /** Checks the queue's stream and consumers exist, creating them again if the server lost them. */
  verify(queue: string): Promise<void>;
  /** Publishes a copy to the queue's dead-letter queue (resolves once JetStream has it). */
  publishDeadLetter(delivery: NatsDelivery, reason: string): Promise<void>;
  forget(consumer: NatsConsumer): void;
}

const encoder = new TextEncoder();
/** A delayed message arriving this close to its time is delivered rather than sent back. */
const EARLY_TOLERANCE_MS = 5;
/** Pulling pauses this long after a pull failed oddly (nobody answered, 409, 503). */
const RECHECK_PAUSE_MS = 500;

export class NatsConsumer implements Consumer, PullOwner {
  private puller?: LevelPuller;
  /** Handed to the handler, not settled yet. */
  private readonly active = new Set<NatsDelivery>();
  /** Received while every slot was taken (from idle pulls), highest level first. */
  private held: NatsDelivery[] = [];
  private scheduled = false;
  /** Held messages wait for the settlements that freed their slots to be on the wire. */
  private releasing = false;
  private stopped = false;
  /** Pulling waits until then (0: it does not) after a pull failed oddly. */
  private pausedUntil = 0;
  /** The streams and consumers are being checked. */
  private checking = false;

  constructor(
    private readonly link: ConsumerLink,
    private readonly queues: readonly string[],
    private readonly onDelivery: DeliveryHandler,
    private concurrency: number,
  ) {}

  get nc(): PullOwner["nc"] {
    return this.link.nc;
  }

  get outbox(): Outbox {
    return this.link.outbox;
  }

  get idlePullMs(): number {
    return this.link.options.idlePullMs;
  }

  /** Creates the queues' streams and consumers, then starts pulling. */
  async start(): Promise<void> {
    const topologies = await Promise.all(this.queues.map((q) => this.link.ensure(q)));
    this.puller = new LevelPuller(this, topologies);
    this.changed();
  }

  setConcurrency(concurrency: number): void {
    this.concurrency = Math.max(0, Math.floor(concurrency));
    if (this.concurrency === 0) this.puller?.disarm(true);
    this.changed();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.link.forget(this);
    const drains = this.puller?.close() ?? [];
    const unsettled = [...this.held, ...this.active];
    this.held = [];
    this.active.clear();
    for (const d of unsettled) {
      d.settled = true;
      this.respond(d, "nak");
    }
    await Promise.race([Promise.allSettled(drains), new Promise((r) => setTimeout(r, 2000).unref())]);
  }

  // ---- called by the transport ------------------------------------------------------------------

  /** The ack subjects of every delivery held unsettled (DeliveryRelease.heldBy). */
  unsettledHandles(): string[] {
    const handles: string[] = [];
    for (const d of this.active) if (d.msg.reply) handles.push(d.msg.reply);
    for (const d of this.held) if (d.msg.reply) handles.push(d.msg.reply);
    return handles;
  }

  /** Drops deliveries another process released: never settled here, not sent back on stop. */
  forget(handles: ReadonlySet<string>): void {
    const released = (d: NatsDelivery) => d.msg.reply !== undefined && handles.has(d.msg.reply);
    for (const d of [...this.active]) {
      if (!released(d)) continue;
      d.settled = true;
      this.active.delete(d);
    }
    const kept = this.held.filter((d) => !released(d));
    for (const d of this.held) if (released(d)) d.settled = true;
    this.held = kept;
    this.changed();
  }

  /** The connection dropped: every pull in flight is lost; pull again once reconnected. */
  onDisconnect(): void {
    this.puller?.reset();
  }

  /** Reconnected (maybe to another node): pull again at once. */
  onReconnect(): void {
    this.pausedUntil = 0;
    this.changed();
  }

  /**
   * A consumer of `stream` got a new leader (in a cluster, its old one died): the pulls waiting
   * there will not be answered; they are placed again now rather than after their timeout.
   */
  onLeaderElected(stream: string, consumer: string): void {
    if (this.stopped || !this.puller?.leaderElected(`${stream}.${consumer}`)) return;
    this.pausedUntil = 0;
    this.changed();
  }

  /** Watchdog, a few times a second: pauses that ended, lost pulls, held messages kept alive. */
  tick(now: number): void {
    if (this.stopped || !this.puller || !this.link.connected()) return;
    if (this.pausedUntil !== 0 && now >= this.pausedUntil) {
      this.pausedUntil = 0;
      this.changed();
    }
    this.puller.expire(now);
    const touchEvery = this.link.options.ackWaitMs / 3;
    for (const d of this.held) {
      if (now - d.touchedAt >= touchEvery) {
        d.touchedAt = now;
        this.respond(d, "working");
      }
    }
  }

  // ---- PullOwner ---------------------------------------------------------------------------------

  slotsFree(): number {
    return this.concurrency - this.active.size - this.held.length;
  }

  mayArm(): boolean {
    return this.concurrency > 0 && !this.stopped;
  }

  changed(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    queueMicrotask(() => this.pump());
  }

  recheck(pause: boolean): void {
    if (pause && this.pausedUntil === 0) this.pausedUntil = Date.now() + RECHECK_PAUSE_MS;
    if (this.checking) return;
    this.checking = true;
    const done = () => {
      this.checking = false;
      this.changed();
    };
    Promise.all(this.queues.map((q) => this.link.verify(q))).then(done, done);
  }

  receive(msg: Msg, source: Source | undefined, info: AckInfo): void {
    if (!source || this.stopped) {
      this.answer(msg, NAK);
      return;
    }
    const notBefore = notBeforeOf(msg);
    const early = notBefore === 0 ? 0 : notBefore - Date.now();
    if (early > EARLY_TOLERANCE_MS) {
      // Delayed enqueue: send it back for the time that remains, without blocking what follows.
      this.link.corrections.add(`${info.stream}.${info.streamSeq}`);
      this.answer(msg, encoder.encode(`-NAK ${JSON.stringify({ delay: Math.ceil(early) * 1_000_000 })}`));
      this.changed();
      return;
    }
    // Only a redelivery can follow a message sent back early.
    const count =
      info.deliveryCount <= 1
        ? 1
        : Math.max(1, info.deliveryCount - this.link.corrections.get(`${info.stream}.${info.streamSeq}`));
    const d = new NatsDelivery(this, source.queue, source.level, msg, info, count);
    const max = this.link.options.maxDeliveries;
    if (count > max) {
      this.active.add(d);
      const reason = `Delivered ${count} times, over the transport's maxDeliveries (${max}); dead-lettered by the NATS transport.`;
      void this.deadLetter(d, reason).catch(() => {});
      return;
    }
    if (this.held.length === 0 && this.active.size < this.concurrency) this.dispatch(d);
    else this.hold(d);
  }

  // ---- deliveries -------------------------------------------------------------------------------

  /** Marks a delivery settled; false when it already was (then the caller does nothing). */
  settle(d: NatsDelivery): boolean {
    if (d.settled) return false;
    d.settled = true;
    this.active.delete(d);
    this.changed();
    return true;
  }

  async deadLetter(d: NatsDelivery, reason: string): Promise<void> {
    if (d.settled || d.deadLettering) return;
    d.deadLettering = true;
    try {
      await this.link.publishDeadLetter(d, reason);
    } catch (error) {
      if (this.settle(d)) this.respond(d, "nak", 1000);
      throw error;
    }
    if (this.settle(d)) this.respond(d, "ack");
  }

  private dispatch(d: NatsDelivery): void {
    this.active.add(d);
    try {
      this.onDelivery(d);
    } catch {
      // A handler that throws synchronously has not processed the message: deliver it again.
      if (this.settle(d)) this.respond(d, "nak");
    }
  }

  private hold(d: NatsDelivery): void {
    let i = this.held.length;
    while (i > 0 && this.held[i - 1]!.level < d.level) i--;
    this.held.splice(i, 0, d);
    this.changed();
  }

  private respond(d: NatsDelivery, kind: "ack" | "nak" | "working", delayMs?: number): void {
    try {
      if (kind === "ack") d.sendAck();
      else if (kind === "nak") d.sendNak(delayMs);
      else d.sendWorking();
    } catch {
      // The connection is gone: JetStream redelivers it after AckWait.
    }
  }

  /** Answers a message not handed to the handler (closed: JetStream redelivers it after AckWait). */
  private answer(msg: Msg, payload: Uint8Array): void {
    if (msg.reply && this.link.outbox.open) this.link.outbox.send(msg.reply, payload);
  }

  private pump(): void {
    this.scheduled = false;
    if (this.stopped || !this.puller || !this.link.connected()) return;
    if (this.held.length > 0 && this.active.size < this.concurrency && !this.releasing) {
      // A held task starts once the ack that freed its slot (and the outcome event before it) is
      // on the wire, in this same turn: a handler that kills its process at once must not take
      // the previous task's settlement with it (it would run again, counted as a crash).
      this.releasing = true;
      this.link.outbox.whenSent(() => this.release());
    }
    if (this.pausedUntil === 0) this.puller.pull();
  }

  private release(): void {
    this.releasing = false;
    // Disconnected meanwhile: the next pump after the reconnect releases them.
    if (this.stopped || !this.link.connected()) return;
    while (this.held.length > 0 && this.active.size < this.concurrency) this.dispatch(this.held.shift()!);
  }
}

const NAK = Uint8Array.of(45, 78, 65, 75); // -NAK
