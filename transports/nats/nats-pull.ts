/**
 * The pulls of one consumer over its sources: one durable pull consumer per (queue, priority
 * level). JetStream has no per-message priority, so this decides, each time slots free, which
 * sources to pull from — always the highest level that may hold a message — without polling and
 * without a timer per message:
 * - A source whose content is unknown is probed with a `no_wait` pull for (a share of) the free
 *   slots; lower levels wait for the answer. Every delivered message says in its ack subject how
 *   many more wait behind it, so a busy level is drained batch after batch with no probing in
 *   between, with several pulls in flight at once.
 * - A source found empty while slots are free gets an idle pull: a long-poll for one message,
 *   renewed every `idlePullMs`. It brings a new message the moment it is stored and marks the
 *   level busy again. Idle pulls are speculative: placed only while slots are free, so at most one
 *   message per source can arrive while every slot is taken (the consumer holds it, ahead of
 *   anything lower, until a slot frees).
 * - Never more messages are requested than there are free slots.
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { type AckInfo, parseAckSubject } from "./nats-delivery.js";
import { LEVELS_HIGH_FIRST, PRIORITY_LEVELS } from "./nats-names.js";
import type { QueueTopology } from "./nats-topology.js";

export interface Source {
  readonly queue: string;
  readonly level: number;
  /** $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer> */
  readonly next: string;
  arm?: Arm;
  /** In-flight no_wait pulls, oldest first (JetStream answers them in order). */
  open: Fetch[];
  /** Messages those pulls may still bring. */
  requested: number;
  /** Messages known to wait behind the last one delivered; undefined: unknown. */
  pending: number | undefined;
}

interface Arm {
  source: Source;
  sub: Subscription;
  expiresAt: number;
}

interface Fetch {
  id: string;
  source: Source;
  batch: number;
  received: number;
  sentAt: number;
}

/** What the puller needs from its consumer. */
export interface PullOwner {
  readonly nc: NatsConnection;
  readonly idlePullMs: number;
  /** Slots not taken by unsettled or held messages (requested ones are counted here). */
  slotsFree(): number;
  /** Whether idle pulls may be placed (not paused, not stopped). */
  mayArm(): boolean;
  /** A message arrived (source undefined: from a consumer this puller does not know). */
  receive(msg: Msg, source: Source | undefined, info: AckInfo): void;
  /** Something changed: pull again soon. */
  changed(): void;
  /** A pull failed oddly (no answer, 409, 503): check the streams and consumers before pulling on. */
  recheck(): void;
}

const encoder = new TextEncoder();
/** No answer to a no_wait pull within this long: the consumer is missing or the reply was lost. */
const FETCH_TIMEOUT_MS = 5000;

export class LevelPuller {
  private readonly byLevel: Source[][] = PRIORITY_LEVELS.map(() => []);
  private readonly roundRobin: number[] = PRIORITY_LEVELS.map(() => 0);
  private readonly byConsumer = new Map<string, Source>();
  private readonly fetches = new Map<string, Fetch>();
  private readonly inbox = createInbox();
  private readonly fetchSub: Subscription;
  private requested = 0;
  private seq = 0;

  constructor(
    private readonly owner: PullOwner,
    topologies: readonly QueueTopology[],
  ) {
    for (const t of topologies) {
      for (const level of LEVELS_HIGH_FIRST) {
        const consumer = t.consumers[level] as string;
        const source: Source = {
          queue: t.queue,
          level,
          next: `$JS.API.CONSUMER.MSG.NEXT.${t.stream}.${consumer}`,
          open: [],
          requested: 0,
          pending: undefined,
        };
        this.byLevel[level]!.push(source);
        this.byConsumer.set(`${t.stream}.${consumer}`, source);
      }
    }
    this.fetchSub = owner.nc.subscribe(`${this.inbox}.f.*`, {
      callback: (_err, msg) => this.onFetchReply(msg),
    });
  }

  free(): number {
    return this.owner.slotsFree() - this.requested;
  }

  /** Requests messages for the free slots, from the highest level that may hold some. */
  pull(): void {
    let free = this.free();
    for (const level of LEVELS_HIGH_FIRST) {
      if (free <= 0) return;
      const group = this.byLevel[level]!;
      // The unknown sources of one level share the free slots among their probes (their order
      // does not matter: same level); lower levels wait for the answers.
      let unknown = 0;
      for (const s of group) if (!s.arm && s.open.length === 0 && !(s.pending! > 0)) unknown++;
      const share = Math.max(1, Math.floor(free / Math.max(1, unknown)));
      let waiting = false;
      for (let i = 0; i < group.length && free > 0; i++) {
        const index = (this.roundRobin[level]! + i) % group.length;
        const s = group[index]!;
        if (s.arm) continue; // known empty: its idle pull brings what arrives
        const known = (s.pending ?? 0) - s.requested;
        let n: number;
        if (known > 0) n = Math.min(free, known);
        else if (s.open.length > 0) {
          waiting = true; // its answer will say whether more wait there
          continue;
        } else {
          n = Math.min(free, share);
          waiting = true;
        }
        this.fetch(s, n);
        this.roundRobin[level] = (index + 1) % group.length;
        free -= n;
      }
      if (waiting) return;
    }
  }

  /** The connection dropped: every pull in flight is lost. */
  reset(): void {
    this.disarm(false);
    this.fetches.clear();
    this.requested = 0;
    for (const s of this.sources()) {
      s.open = [];
      s.requested = 0;
      s.pending = undefined;
    }
  }

  /** Ends pulls that got no answer and idle pulls long past their expiry. */
  expire(now: number): void {
    for (const f of this.fetches.values()) {
      if (now - f.sentAt > FETCH_TIMEOUT_MS) this.endFetch(f, 0);
    }
    for (const s of this.sources()) {
      if (s.arm && now > s.arm.expiresAt + FETCH_TIMEOUT_MS) {
        s.arm.sub.unsubscribe();
        s.arm = undefined;
        s.pending = undefined;
        this.owner.changed();
      }
    }
  }

  /**
   * Cancels the idle pulls (the server drops a pull whose reply subject lost its subscriber).
   * `catchLate`: drain instead, still receiving a message sent before the server saw it.
   */
  disarm(catchLate: boolean): Promise<unknown>[] {
    const drains: Promise<unknown>[] = [];
    for (const s of this.sources()) {
      const arm = s.arm;
      if (!arm) continue;
      s.arm = undefined;
      s.pending = undefined;
      if (catchLate) drains.push(drain(arm.sub));
      else arm.sub.unsubscribe();
    }
    return drains;
  }

  /** Stops everything; late messages still reach the owner (which returns them). */
  close(): Promise<unknown>[] {
    return [...this.disarm(true), drain(this.fetchSub)];
  }

  private *sources(): Generator<Source> {
    for (const level of this.byLevel) yield* level;
  }

  private fetch(s: Source, batch: number): void {
    const id = (++this.seq).toString(36);
    const f: Fetch = { id, source: s, batch, received: 0, sentAt: Date.now() };
    this.fetches.set(id, f);
    s.open.push(f);
    s.requested += batch;
    this.requested += batch;
    this.request(s.next, { batch, no_wait: true }, `${this.inbox}.f.${id}`);
  }

  private onFetchReply(msg: Msg): void {
    if (!msg.reply) {
      // A status (404/408: no more messages) comes on the pull's own reply subject.
      const f = this.fetches.get(msg.subject.slice(this.inbox.length + 3));
      if (f) this.endFetch(f, msg.headers?.code ?? 0);
      return;
    }
    // A message comes on its original subject; its ack subject names the consumer.
    const info = parseAckSubject(msg.reply);
    if (!info) return;
    const source = this.byConsumer.get(`${info.stream}.${info.consumer}`);
    const f = source?.open.find((x) => x.received < x.batch);
    if (f) {
      f.received++;
      f.source.requested--;
      this.requested--;
    }
    if (source) source.pending = info.pending;
    this.owner.receive(msg, source, info);
    if (f && f.received >= f.batch) this.endFetch(f, 200);
  }

  /** A pull is over: `code` 200 (its batch arrived), 404/408 (no more messages), else a problem. */
  private endFetch(f: Fetch, code: number): void {
    if (!this.fetches.delete(f.id)) return;
    const s = f.source;
    const missing = f.batch - f.received;
    s.requested -= missing;
    this.requested -= missing;
    s.open.splice(s.open.indexOf(f), 1);
    if (code === 404 || code === 408) s.pending = 0;
    else if (code !== 200) {
      s.pending = undefined;
      this.owner.recheck();
    }
    if (s.pending === 0 && s.open.length === 0 && !s.arm) this.arm(s);
    this.owner.changed();
  }

  private arm(s: Source): void {
    if (!this.owner.mayArm() || this.free() <= 0) return;
    const subject = `${this.inbox}.a.${++this.seq}`;
    const idle = this.owner.idlePullMs;
    const arm: Arm = {
      source: s,
      expiresAt: Date.now() + idle,
      sub: this.owner.nc.subscribe(subject, { callback: (_err, msg) => this.onArmReply(arm, msg) }),
    };
    s.arm = arm;
    this.request(s.next, { batch: 1, expires: idle * 1_000_000 }, subject);
  }

  private onArmReply(arm: Arm, msg: Msg): void {
    const s = arm.source;
    const current = s.arm === arm;
    if (current) s.arm = undefined;
    if (!arm.sub.isDraining()) arm.sub.unsubscribe();
    if (!msg.reply) {
      if (!current) return;
      if ((msg.headers?.code ?? 0) === 408) {
        // Expired with nothing new: the level is still empty.
        s.pending = 0;
        if (s.open.length === 0) this.arm(s);
      } else {
        // 409 (e.g. too many waiting pulls, consumer deleted): check the consumer, then look again.
        s.pending = undefined;
        this.owner.recheck();
      }
      this.owner.changed();
      return;
    }
    const info = parseAckSubject(msg.reply);
    if (!info) return;
    s.pending = info.pending;
    this.owner.receive(msg, s, info);
    if (current && s.pending === 0 && s.open.length === 0 && !s.arm) this.arm(s);
    this.owner.changed();
  }

  private request(subject: string, body: object, reply: string): void {
    try {
      this.owner.nc.publish(subject, encoder.encode(JSON.stringify(body)), { reply });
    } catch {
      // Closed or closing: the pull never left; the watchdog or the reconnect takes it from here.
    }
  }
}

function drain(sub: Subscription): Promise<unknown> {
  if (sub.isClosed() || sub.isDraining()) return Promise.resolve();
  try {
    return sub.drain().catch(() => {});
  } catch {
    return Promise.resolve();
  }
}
