/**
 * The pulls of one consumer over its sources: one durable pull consumer per (queue, priority
 * level). JetStream has no per-message priority, so this decides, each time slots free, which
 * sources to pull from — always the highest level that may hold a message — without polling and
 * without a timer per message:
 * - A source whose content is unknown is probed with a `no_wait` pull for (a share of) the free
 *   slots; lower levels wait for the answer. Every delivered message says in its ack subject how
 *   many more wait behind it, so a busy level is drained batch after batch with no probing in
 *   between, with several pulls in flight at once.
 * - A source found empty while slots are free gets a standing pull: a long-poll, renewed every
 *   `idlePullMs`, answered on a subscription of the source's own that lasts across renewals. It
 *   brings a new message the moment it is stored. Usually it asks for one message, speculatively:
 *   not counted against the free slots, so at most one message per source can arrive while every
 *   slot is taken (the consumer holds it, ahead of anything lower, until a slot frees).
 * - A source that delivered within the last `idlePullMs`, while no other source has messages
 *   waiting, asks for exactly the free slots at once ("wide"): a stream of tasks arriving one at a
 *   time does not renew the pull after each of them. All it asks for but one is counted against
 *   the free slots; when another source then needs them (messages waiting, or a level to probe),
 *   the wide pull is cancelled (its subscription drained, a one-message pull put in its place if a
 *   slot is free) and the slots go where the messages are.
 * - A source whose pull got no answer at all (its consumer has no leader while a cluster elects
 *   one; the JetStream API answers nothing then, not even "no responders") is probed one message
 *   at a time until it answers, without holding the lower levels back; a new leader elected for
 *   a source's consumer (`leaderElected`) has its pulls placed again at once.
 * - Never more messages are requested than there are free slots, plus one per standing pull.
 * Pull requests leave through the outbox lazily: a renewal rides along with the settlement of the
 * message that ended its predecessor instead of costing a socket write of its own.
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { type AckInfo, parseAckSubject } from "./nats-delivery.js";
import { LEVELS_HIGH_FIRST, PRIORITY_LEVELS } from "./nats-names.js";
import type { Outbox } from "./nats-outbox.js";
import type { QueueTopology } from "./nats-topology.js";

export interface Source {
  readonly queue: string;
  readonly level: number;
  /** $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer> */
  readonly next: string;
  /** The subscription its standing pulls answer on (replaced after a cancel). */
  line?: Line;
  /** In-flight no_wait pulls, oldest first (JetStream answers them in order). */
  open: Fetch[];
  /** Messages those pulls may still bring. */
  requested: number;
  /** Messages known to wait behind the last one delivered; undefined: unknown. */
  pending: number | undefined;
  /** When a message last came from it (0: never). */
  lastMessageAt: number;
  /**
   * Its last pull got no answer at all: its consumer may have no leader (a cluster electing one,
   * which can take many seconds). Until it answers again it is probed for one message at a time
   * and does not hold the lower levels back.
   */
  silent: boolean;
}

interface Line {
  source: Source;
  sub: Subscription;
  subject: string;
  /** The standing pull outstanding on it. */
  arm?: Arm;
  /** Cancelled: draining (a message already on its way is still taken) or gone. */
  closed: boolean;
}

interface Arm {
  line: Line;
  /** Messages it may still bring. */
  remaining: number;
  expiresAt: number;
  /** What it holds of the free slots: all it may still bring but one. */
  charge: number;
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
  readonly outbox: Outbox;
  readonly idlePullMs: number;
  /** Slots not taken by unsettled or held messages (requested ones are counted here). */
  slotsFree(): number;
  /** Whether standing pulls may be placed (not paused, not stopped). */
  mayArm(): boolean;
  /** A message arrived (source undefined: from a consumer this puller does not know). */
  receive(msg: Msg, source: Source | undefined, info: AckInfo): void;
  /** Something changed: pull again soon. */
  changed(): void;
  /**
   * A pull failed oddly (no answer, 409, 503): check the streams and consumers. `pause`: pull
   * again only a little later (a failure that came at once would otherwise repeat in a loop).
   */
  recheck(pause: boolean): void;
}

const encoder = new TextEncoder();
/** No answer to a no_wait pull within this long: the consumer is missing or the reply was lost. */
const FETCH_TIMEOUT_MS = 5000;
/** endFetch's code for a pull given up on without an answer, with nothing to check. */
const ABANDONED = -1;
/** endFetch's code for a pull that got no answer within FETCH_TIMEOUT_MS. */
const UNANSWERED = 0;

export class LevelPuller {
  private readonly byLevel: Source[][] = PRIORITY_LEVELS.map(() => []);
  private readonly all: Source[] = [];
  private readonly roundRobin: number[] = PRIORITY_LEVELS.map(() => 0);
  private readonly byConsumer = new Map<string, Source>();
  private readonly fetches = new Map<string, Fetch>();
  private readonly inbox = createInbox();
  private readonly fetchSub: Subscription;
  /** Messages the pulls in flight may bring, counted against the free slots. */
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
          lastMessageAt: 0,
          silent: false,
        };
        this.byLevel[level]!.push(source);
        this.all.push(source);
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
    let short = free < 0;
    for (const level of LEVELS_HIGH_FIRST) {
      const group = this.byLevel[level]!;
      // The unknown sources of one level share the free slots among their probes (their order
      // does not matter: same level); lower levels wait for the answers.
      let unknown = 0;
      for (const s of group) {
        if (!s.silent && !s.line?.arm && s.open.length === 0 && !(s.pending! > 0)) unknown++;
      }
      const share = Math.max(1, Math.floor(Math.max(0, free) / Math.max(1, unknown)));
      let waiting = false;
      for (let i = 0; i < group.length; i++) {
        const index = (this.roundRobin[level]! + i) % group.length;
        const s = group[index]!;
        const arm = s.line?.arm;
        const known = (s.pending ?? 0) - s.requested - (arm?.remaining ?? 0);
        let want: number;
        if (known > 0) want = known;
        else if (arm) {
          continue; // empty as far as known: its standing pull brings what arrives
        } else if (s.open.length > 0) {
          if (!s.silent) waiting = true; // its answer will say whether more wait there
          continue;
        } else if (s.silent) {
          want = 1; // looked at again, without holding the lower levels back
        } else {
          want = share;
          waiting = true;
        }
        const n = Math.min(free, want);
        if (n < want) short = true;
        if (n <= 0) continue;
        this.fetch(s, n);
        this.roundRobin[level] = (index + 1) % group.length;
        free -= n;
      }
      if (waiting) break;
    }
    if (short) this.reclaim();
  }

  /**
   * The source's consumer (`<stream>.<consumer>`) has a new leader: its pulls waited on the old
   * one and will get no answer. They are forgotten (a message they still bring is taken all the
   * same), and the source is probed again. False when no source of this puller has that consumer.
   */
  leaderElected(key: string): boolean {
    const s = this.byConsumer.get(key);
    if (!s) return false;
    for (const f of [...s.open]) this.endFetch(f, ABANDONED);
    if (s.line) this.cancel(s.line, true);
    s.pending = undefined;
    s.silent = false;
    return true;
  }

  /** The connection dropped: every pull in flight is lost. */
  reset(): void {
    this.disarm(false);
    this.fetches.clear();
    this.requested = 0;
    for (const s of this.all) {
      s.open = [];
      s.requested = 0;
      s.pending = undefined;
    }
  }

  /** Ends pulls that got no answer and standing pulls long past their expiry. */
  expire(now: number): void {
    for (const f of this.fetches.values()) {
      if (now - f.sentAt > FETCH_TIMEOUT_MS) this.endFetch(f, UNANSWERED);
    }
    for (const s of this.all) {
      const line = s.line;
      if (line?.arm && now > line.arm.expiresAt + FETCH_TIMEOUT_MS) {
        this.cancel(line, false);
        s.pending = undefined;
        this.owner.changed();
      }
    }
  }

  /**
   * Cancels the standing pulls (the server drops a pull whose reply subject lost its subscriber).
   * `catchLate`: drain instead, still receiving a message sent before the server saw it.
   */
  disarm(catchLate: boolean): Promise<unknown>[] {
    const drains: Promise<unknown>[] = [];
    for (const s of this.all) {
      const line = s.line;
      if (!line) continue;
      s.pending = undefined;
      const drained = this.cancel(line, catchLate);
      if (drained) drains.push(drained);
    }
    return drains;
  }

  /** Stops everything; late messages still reach the owner (which returns them). */
  close(): Promise<unknown>[] {
    return [...this.disarm(true), drain(this.fetchSub)];
  }

  private fetch(s: Source, batch: number): void {
    const id = (++this.seq).toString(36);
    const f: Fetch = { id, source: s, batch, received: 0, sentAt: Date.now() };
    this.fetches.set(id, f);
    s.open.push(f);
    s.requested += batch;
    this.requested += batch;
    this.request(s.next, `{"batch":${batch},"no_wait":true}`, `${this.inbox}.f.${id}`);
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
    if (source) {
      source.pending = info.pending;
      source.lastMessageAt = Date.now();
      source.silent = false;
    }
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
    s.silent = code === UNANSWERED;
    if (code === 404 || code === 408) s.pending = 0;
    else if (code !== 200) {
      s.pending = undefined;
      if (code !== ABANDONED) this.owner.recheck(code !== UNANSWERED);
    }
    if (s.pending === 0 && s.open.length === 0 && !s.line?.arm) this.arm(s);
    this.owner.changed();
  }

  /**
   * Places the source's standing pull, only while a slot is free (not taken, not requested): one
   * message, or exactly the free slots for a source in use (never one more: at concurrency 1 a
   * wide pull is a one-message pull, and a worker running one task holds no second one).
   */
  private arm(s: Source): void {
    const free = this.free();
    if (!this.owner.mayArm() || free <= 0) return;
    const now = Date.now();
    const idle = this.owner.idlePullMs;
    let batch = 1;
    if (now - s.lastMessageAt < idle && !this.waitingElsewhere(s)) batch = free;
    const line = s.line ?? this.openLine(s);
    const arm: Arm = { line, remaining: batch, expiresAt: now + idle, charge: 0 };
    line.arm = arm;
    this.recharge(arm);
    this.request(s.next, `{"batch":${batch},"expires":${idle * 1_000_000}}`, line.subject);
  }

  private openLine(s: Source): Line {
    const subject = `${this.inbox}.a.${++this.seq}`;
    const line: Line = {
      source: s,
      subject,
      closed: false,
      sub: this.owner.nc.subscribe(subject, { callback: (_err, msg) => this.onArmReply(line, msg) }),
    };
    s.line = line;
    return line;
  }

  private onArmReply(line: Line, msg: Msg): void {
    const s = line.source;
    const arm = line.arm;
    if (!msg.reply) {
      // A status: the pull is over. 408: expired with nothing new, the level is still empty.
      if (!arm) return;
      this.endArm(arm);
      if (line.closed) return;
      if ((msg.headers?.code ?? 0) === 408) {
        s.pending = 0;
        if (s.open.length === 0) this.arm(s);
      } else {
        // 409 (e.g. too many waiting pulls, consumer deleted): check the consumer, then look again.
        s.pending = undefined;
        this.owner.recheck(true);
      }
      this.owner.changed();
      return;
    }
    const info = parseAckSubject(msg.reply);
    if (!info) return;
    if (arm) {
      arm.remaining--;
      if (arm.remaining <= 0) this.endArm(arm);
      else this.recharge(arm);
    }
    s.pending = info.pending;
    s.lastMessageAt = Date.now();
    this.owner.receive(msg, s, info);
    if (!line.closed && !line.arm && s.pending === 0 && s.open.length === 0) this.arm(s);
    this.owner.changed();
  }

  /** Whether another source may have messages waiting (so a wide standing pull would hold its slots). */
  private waitingElsewhere(s: Source): boolean {
    for (const x of this.all) {
      if (x === s) continue;
      if (x.pending === undefined) return true;
      if (x.pending - x.requested - (x.line?.arm?.remaining ?? 0) > 0) return true;
    }
    return false;
  }

  /**
   * Some source needs more slots than are free: cancel the wide standing pulls of sources known
   * empty, releasing what they hold once their subscriptions have drained; a one-message pull
   * takes each one's place at once, so the level stays watched.
   */
  private reclaim(): void {
    for (const s of this.all) {
      const line = s.line;
      const arm = line?.arm;
      if (!line || !arm || arm.charge <= 0 || (s.pending ?? 0) > arm.remaining) continue;
      this.cancel(line, true);
      this.arm(s);
    }
  }

  /** Cancels a line; with `catchLate` its charge is released once the drain is over. */
  private cancel(line: Line, catchLate: boolean): Promise<unknown> | undefined {
    line.closed = true;
    if (line.source.line === line) line.source.line = undefined;
    if (catchLate) {
      return drain(line.sub).then(() => {
        if (line.arm) {
          this.endArm(line.arm);
          this.owner.changed();
        }
      });
    }
    if (!line.sub.isClosed()) line.sub.unsubscribe();
    if (line.arm) this.endArm(line.arm);
    return undefined;
  }

  /** The pull is over: it brings nothing more and holds no slot. */
  private endArm(arm: Arm): void {
    arm.remaining = 0;
    this.recharge(arm);
    if (arm.line.arm === arm) arm.line.arm = undefined;
  }

  private recharge(arm: Arm): void {
    const charge = Math.max(0, arm.remaining - 1);
    this.requested += charge - arm.charge;
    arm.charge = charge;
  }

  private request(subject: string, body: string, reply: string): void {
    // Closed or closing: the pull never leaves; the watchdog or the reconnect takes it from here.
    if (this.owner.outbox.open) this.owner.outbox.sendLazily(subject, encoder.encode(body), reply);
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
