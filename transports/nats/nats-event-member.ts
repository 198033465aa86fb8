/**
 * One member of an event group on NATS. Durable: pulls from the group's consumer(s) (one, or one
 * per partition for an ordered group) on a subscription of its own, never asking for more
 * messages than it has free slots (unsettled + requested ≤ concurrency); a pull's unfilled part
 * is given back when JetStream says it expired (408 with Nats-Pending-Messages), and a pull that
 * never answers is forgotten after its expiry. Settles with a plain publish on the ack subject.
 * Live (`durable: false`): a core NATS queue subscription, at most once.
 */
import { createInbox, type Msg, type Subscription } from "@nats-io/transport-node";
import type { EventDelivery, GroupSpec } from "../event-log.js";
import { parseAckSubject } from "./nats-delivery.js";
import type { EventConnection, NatsEventNames } from "./nats-event-log.js";

const ACK = Uint8Array.of(43, 65, 67, 75); // +ACK
const NAK = Uint8Array.of(45, 78, 65, 75); // -NAK
const WPI = Uint8Array.of(43, 87, 80, 73); // +WPI
const encoder = new TextEncoder();
/** How long one pull waits on the server for messages. */
const PULL_EXPIRES_MS = 10_000;
/** A pull unanswered this long after its expiry is considered lost (server restart, dropped reply). */
const LOST_AFTER_MS = 5000;

interface Source {
  consumer: string;
  next: string;
  /** Messages the pulls in flight may still bring. */
  requested: number;
  /** Latest expiry among its pulls in flight. */
  expiresAt: number;
  /** Deliveries of this source not settled yet. */
  inHand: number;
}

export interface MemberLink {
  conn(): EventConnection;
  names: NatsEventNames;
  spec: GroupSpec;
  consumers: string[];
  onEvent(delivery: EventDelivery): void;
  connected(): boolean;
  /** Creates the streams and the group's consumers again (after a reconnect, or a 409/503). */
  ensure(): Promise<void>;
  deadLetter(delivery: EventDelivery, reason: string): Promise<void>;
}

export class NatsEventMember {
  private readonly sources: Source[];
  private readonly byConsumer = new Map<string, Source>();
  private readonly inbox = createInbox();
  private sub?: Subscription;
  private inHand = 0;
  private closed = false;
  private scheduled = false;
  private needsEnsure = false;
  private ensuring = false;
  private ensureAfter = 0;
  private readonly unsettled = new Set<NatsEventDelivery>();

  constructor(private readonly link: MemberLink) {
    const stream = link.names.stream;
    this.sources = link.consumers.map((consumer) => ({
      consumer,
      next: `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`,
      requested: 0,
      expiresAt: 0,
      inHand: 0,
    }));
    for (const s of this.sources) this.byConsumer.set(s.consumer, s);
  }

  start(): void {
    this.subscribe();
    this.changed();
  }

  private subscribe(): void {
    const { nc } = this.link.conn();
    this.sub = nc.subscribe(`${this.inbox}.*`, { callback: (_err, msg) => this.onMessage(msg) });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const d of [...this.unsettled]) d.release();
    const sub = this.sub;
    if (sub && !sub.isClosed()) sub.unsubscribe();
    this.link.conn().outbox.flush();
  }

  tick(now: number): void {
    if (this.closed) return;
    if (this.needsEnsure) {
      if (!this.ensuring && now >= this.ensureAfter && this.link.connected()) this.reensure();
      return;
    }
    for (const s of this.sources) {
      if (s.requested > 0 && now > s.expiresAt + LOST_AFTER_MS) {
        s.requested = 0;
        this.changed();
      }
    }
  }

  onDisconnect(): void {
    for (const s of this.sources) s.requested = 0;
  }

  /** Its consumer `consumer` has a new leader: the pulls the old one held are gone; pull again. */
  onLeaderElected(consumer: string): void {
    const source = this.byConsumer.get(consumer);
    if (!source || this.closed) return;
    source.requested = 0;
    this.changed();
  }

  onReconnect(): void {
    this.needsEnsure = true;
    this.ensureAfter = 0;
    this.tick(Date.now());
  }

  settled(d: NatsEventDelivery, payload: Uint8Array): void {
    if (!this.unsettled.delete(d)) return;
    this.inHand--;
    d.source.inHand--;
    // At the end of this turn: the settlements of every message read in it (and the pull that
    // renews them) leave in one write, instead of one write per socket read.
    const { outbox } = this.link.conn();
    if (outbox.open) outbox.sendLazily(d.reply, payload);
    this.changed();
  }

  send(reply: string, payload: Uint8Array): void {
    const { outbox } = this.link.conn();
    if (outbox.open) outbox.send(reply, payload);
  }

  private onMessage(msg: Msg): void {
    if (!msg.reply) {
      // A status on the pull's own reply subject: 408 (the pull expired), 404 (no messages),
      // 409 (e.g. consumer deleted, too many pulls), 100 (heartbeat).
      const source = this.byConsumer.get(msg.subject.slice(this.inbox.length + 1));
      if (!source) return;
      const code = msg.headers?.code ?? 0;
      const left = Number(msg.headers?.get("Nats-Pending-Messages") ?? "");
      if (Number.isInteger(left) && left > 0) source.requested = Math.max(0, source.requested - left);
      else if (code === 408 || code === 404) source.requested = 0;
      if (code === 409 || code === 503) {
        source.requested = 0;
        if (!/Exceeded|Max/i.test(msg.headers?.description ?? "")) {
          this.needsEnsure = true;
          this.ensureAfter = Date.now() + 500;
        }
      }
      this.changed();
      return;
    }
    // A message arrives on its own subject; its ack subject names the consumer.
    const info = parseAckSubject(msg.reply);
    const source = info ? this.byConsumer.get(info.consumer) : undefined;
    if (!source || !info || this.closed) {
      this.send(msg.reply, NAK);
      return;
    }
    if (source.requested > 0) source.requested--;
    const d = new NatsEventDelivery(this, source, msg, info);
    this.unsettled.add(d);
    this.inHand++;
    source.inHand++;
    try {
      this.link.onEvent(d);
    } catch {
      d.release();
    }
    this.changed();
  }

  deadLetter(d: NatsEventDelivery, reason: string): Promise<void> {
    return this.link.deadLetter(d, reason);
  }

  typeOf(subject: string): string {
    return this.link.names.typeOf(subject);
  }

  private changed(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pull();
    });
  }

  private pull(): void {
    if (this.closed || this.needsEnsure || !this.link.connected()) return;
    const concurrency = this.link.spec.concurrency;
    let requested = 0;
    for (const s of this.sources) requested += s.requested;
    let free = concurrency - this.inHand - requested;
    if (this.link.spec.ordered) {
      // One message at a time per partition (its consumer allows no more).
      for (const s of this.sources) {
        if (free <= 0) return;
        if (s.requested > 0 || s.inHand > 0) continue;
        this.request(s, 1);
        free--;
      }
      return;
    }
    const s = this.sources[0] as Source;
    const threshold = Math.max(1, Math.floor(concurrency / 4));
    if (free >= threshold || (free > 0 && s.requested === 0)) this.request(s, free);
  }

  private request(s: Source, batch: number): void {
    const { outbox } = this.link.conn();
    if (!outbox.open) return;
    s.requested += batch;
    s.expiresAt = Date.now() + PULL_EXPIRES_MS;
    const body = `{"batch":${batch},"expires":${PULL_EXPIRES_MS * 1_000_000}}`;
    outbox.sendLazily(s.next, encoder.encode(body), `${this.inbox}.${s.consumer}`);
  }

  private reensure(): void {
    this.ensuring = true;
    this.link.ensure().then(
      () => {
        this.ensuring = false;
        this.needsEnsure = false;
        for (const s of this.sources) s.requested = 0;
        this.changed();
      },
      () => {
        this.ensuring = false;
        this.ensureAfter = Date.now() + 1000;
      },
    );
  }
}

class NatsEventDelivery implements EventDelivery {
  readonly body: Uint8Array;
  readonly reply: string;
  readonly sequence: number;
  readonly deliveryCount: number;

  constructor(
    private readonly member: NatsEventMember,
    readonly source: Source,
    private readonly msg: Msg,
    info: { streamSeq: number; deliveryCount: number },
  ) {
    this.body = msg.data;
    this.reply = msg.reply as string;
    this.sequence = info.streamSeq;
    this.deliveryCount = info.deliveryCount;
  }

  /** From the subject, when asked (dead letters, logs): the handler reads it from the event. */
  get type(): string {
    return this.member.typeOf(this.msg.subject);
  }

  ack(): void {
    this.member.settled(this, ACK);
  }

  release(): void {
    this.member.settled(this, NAK);
  }

  inProgress(): void {
    this.member.send(this.reply, WPI);
  }

  async deadLetter(reason: string): Promise<void> {
    await this.member.deadLetter(this, reason);
    this.ack();
  }
}

/** A member of a non-durable group: a core NATS queue subscription (at most once). */
export class NatsLiveMember {
  private subs: Subscription[] = [];
  private inHand = 0;
  private readonly waiting: Msg[] = [];
  private closed = false;
  /** Live events beyond this many waiting for a slot are dropped (at most once), and counted. */
  static readonly MAX_WAITING = 100_000;
  dropped = 0;

  constructor(
    private readonly conn: EventConnection,
    private readonly names: NatsEventNames,
    private readonly spec: GroupSpec,
    private readonly onEvent: (delivery: EventDelivery) => void,
    private readonly storeDeadLetter: (d: EventDelivery, reason: string) => Promise<void>,
  ) {}

  async start(): Promise<void> {
    for (const subject of [this.names.filter(this.spec.pattern), this.names.liveFilter(this.spec.pattern)]) {
      this.subs.push(
        this.conn.nc.subscribe(subject, {
          queue: this.spec.group,
          callback: (_err, msg) => this.receive(msg),
        }),
      );
    }
    this.conn.outbox.flush();
    await this.conn.nc.flush();
  }

  private receive(msg: Msg): void {
    if (this.closed) return;
    if (this.inHand >= this.spec.concurrency) {
      if (this.waiting.length >= NatsLiveMember.MAX_WAITING) this.dropped++;
      else this.waiting.push(msg);
      return;
    }
    this.deliver(msg);
  }

  private deliver(msg: Msg): void {
    this.inHand++;
    const delivery = new LiveDelivery(this, msg);
    try {
      this.onEvent(delivery);
    } catch {
      delivery.ack();
    }
  }

  /** A live delivery is over (handled, failed or dropped): the next waiting one may start. */
  done(): void {
    this.inHand--;
    const next = this.waiting.shift();
    if (next && !this.closed) this.deliver(next);
  }

  deadLetter(delivery: EventDelivery, reason: string): Promise<void> {
    return this.storeDeadLetter(delivery, reason);
  }

  typeOf(subject: string): string {
    return this.names.typeOf(subject);
  }

  tick(): void {}
  onDisconnect(): void {}
  onReconnect(): void {}

  async close(): Promise<void> {
    this.closed = true;
    this.waiting.length = 0;
    for (const sub of this.subs) if (!sub.isClosed()) sub.unsubscribe();
  }
}

/** A delivery of a live (non-durable) group: nothing to settle on the broker. */
class LiveDelivery implements EventDelivery {
  readonly body: Uint8Array;
  readonly sequence = undefined;
  readonly deliveryCount = 1;
  private over = false;

  constructor(
    private readonly member: NatsLiveMember,
    private readonly msg: Msg,
  ) {
    this.body = msg.data;
  }

  /** From the subject, when asked (dead letters, logs): the handler reads it from the event. */
  get type(): string {
    return this.member.typeOf(this.msg.subject);
  }

  ack(): void {
    if (this.over) return;
    this.over = true;
    this.member.done();
  }

  release(): void {
    this.ack();
  }

  inProgress(): void {}

  async deadLetter(reason: string): Promise<void> {
    await this.member.deadLetter(this, reason);
    this.ack();
  }
}
