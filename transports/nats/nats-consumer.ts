/**
 * A competing consumer over the priority levels of one or more queues. JetStream has no
 * per-message priority, so every (queue, level) has its own durable pull consumer — a "source" —
 * and this class decides, each time a slot frees, which source to pull from: always the highest
 * level that may hold a message, across all the queues of one consume() call.
 *
 * How it pulls, without polling and without a timer per message:
 * - A source whose state is unknown is probed with a `no_wait` pull for as many messages as there
 *   are free slots; lower levels wait for its answer. Every delivered message says (in its ack
 *   subject) how many more wait behind it, so a busy level is drained batch after batch with no
 *   probing in between, and several pulls on it may be in flight at once.
 * - A source found empty while slots are free gets an "idle pull": a long-poll request for one
 *   message, renewed every `idlePullMs`. It brings a new message the moment it is stored (no
 *   polling delay) and marks the level busy again. Idle pulls are speculative: they are only
 *   placed while slots are free, so at most one extra message per level can arrive while every
 *   slot is taken; it is held here (ahead of anything lower) until a slot frees.
 * - Never more messages are requested than there are free slots, so `concurrency` bounds the
 *   messages this consumer holds unsettled (plus those few held ones).
 */
import type { Msg, Subscription } from "@nats-io/transport-node";
import { createInbox } from "@nats-io/transport-node";
import type { Consumer, DeliveryHandler } from "../transport.js";
import {
  type AckInfo,
  type DeliveryCorrections,
  NatsDelivery,
  NOT_BEFORE_HEADER,
  parseAckSubject,
} from "./nats-delivery.js";
import { LEVELS_HIGH_FIRST, PRIORITY_LEVELS } from "./nats-names.js";
import type { ResolvedNatsOptions } from "./nats-options.js";
import type { QueueTopology } from "./nats-topology.js";

/** What a consumer needs from its transport. */
export interface ConsumerLink {
  readonly nc: import("@nats-io/transport-node").NatsConnection;
  readonly options: ResolvedNatsOptions;
  readonly corrections: DeliveryCorrections;
  connected(): boolean;
  ensure(queue: string): Promise<QueueTopology>;
  /** Publishes a copy to the queue's dead-letter queue (resolves once JetStream has it). */
  publishDeadLetter(delivery: NatsDelivery, reason: string): Promise<void>;
  forget(consumer: NatsConsumer): void;
}

interface Source {
  queue: string;
  level: number;
  /** $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer> */
  next: string;
  arm?: Arm;
  /** In-flight no_wait pulls, oldest first (JetStream answers them in order), and the messages they may still bring. */
  open: Fetch[];
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

const encoder = new TextEncoder();
/** No answer to a no_wait pull within this long: the consumer is missing or the reply was lost. */
const FETCH_TIMEOUT_MS = 5000;
/** A delayed message arriving this close to its time is delivered rather than sent back. */
const EARLY_TOLERANCE_MS = 5;

export class NatsConsumer implements Consumer {
  private readonly byLevel: Source[][] = PRIORITY_LEVELS.map(() => []);
  private readonly roundRobin: number[] = PRIORITY_LEVELS.map(() => 0);
  private readonly sourceByKey = new Map<string, Source>();
  private readonly active = new Set<NatsDelivery>();
  private held: NatsDelivery[] = [];
  private readonly fetches = new Map<string, Fetch>();
  private readonly inbox = createInbox();
  private fetchSub?: Subscription;
  private requested = 0;
  private seq = 0;
  private scheduled = false;
  private stopped = false;
  private needsEnsure = true;
  private ensuring = false;
  private ensureAfter = 0;

  constructor(
    private readonly link: ConsumerLink,
    private readonly queues: readonly string[],
    private readonly onDelivery: DeliveryHandler,
    private concurrency: number,
  ) {}

  /** Creates the queues' streams and consumers, then starts pulling. */
  async start(): Promise<void> {
    const topologies = await Promise.all(this.queues.map((q) => this.link.ensure(q)));
    for (const t of topologies) {
      for (const level of LEVELS_HIGH_FIRST) {
        const source: Source = {
          queue: t.queue,
          level,
          next: `$JS.API.CONSUMER.MSG.NEXT.${t.stream}.${t.consumers[level]}`,
          open: [],
          requested: 0,
          pending: undefined,
        };
        this.byLevel[level]!.push(source);
        this.sourceByKey.set(`${t.stream}.${t.consumers[level]}`, source);
      }
    }
    this.fetchSub = this.link.nc.subscribe(`${this.inbox}.f.*`, {
      callback: (_err, msg) => this.onFetchReply(msg),
    });
    this.needsEnsure = false;
    this.schedule();
  }

  setConcurrency(concurrency: number): void {
    this.concurrency = Math.max(0, Math.floor(concurrency));
    if (this.concurrency === 0) this.disarmAll(true);
    this.schedule();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.link.forget(this);
    const drains = this.disarmAll(true);
    if (this.fetchSub) drains.push(drain(this.fetchSub));
    const unsettled = [...this.held, ...this.active];
    this.held = [];
    this.active.clear();
    for (const d of unsettled) {
      d.settled = true;
      this.nak(d);
    }
    await Promise.race([Promise.allSettled(drains), new Promise((r) => setTimeout(r, 2000).unref())]);
  }

  // ---- called by the transport ------------------------------------------------------------------

  /** The connection dropped: every pull in flight is lost; pull again once reconnected. */
  onDisconnect(): void {
    this.disarmAll(false);
    this.fetches.clear();
    this.requested = 0;
    for (const s of this.sources()) {
      s.open = [];
      s.requested = 0;
      s.pending = undefined;
    }
    this.needsEnsure = true;
    this.ensureAfter = 0;
  }

  /** Reconnected: create the streams and consumers again if the server lost them, then pull. */
  onReconnect(): void {
    this.ensureAfter = 0;
    this.tick(Date.now());
  }

  /** Watchdog, a few times a second: lost pulls, idle pulls past their expiry, held messages, re-creation. */
  tick(now: number): void {
    if (this.stopped) return;
    if (this.needsEnsure) {
      if (!this.ensuring && now >= this.ensureAfter && this.link.connected()) this.reensure();
      return;
    }
    for (const f of this.fetches.values()) {
      if (now - f.sentAt > FETCH_TIMEOUT_MS) {
        this.endFetch(f, 0); // unanswered: perhaps the consumer was deleted; endFetch checks it
      }
    }
    for (const s of this.sources()) {
      if (s.arm && now > s.arm.expiresAt + FETCH_TIMEOUT_MS) {
        s.arm.sub.unsubscribe();
        s.arm = undefined;
        s.pending = undefined;
        this.schedule();
      }
    }
    const touchEvery = this.link.options.ackWaitMs / 3;
    for (const d of this.held) {
      if (now - d.touchedAt >= touchEvery) {
        d.touchedAt = now;
        this.respond(d, "working");
      }
    }
  }

  // ---- deliveries -------------------------------------------------------------------------------

  /** Marks a delivery settled; false when it already was (then the caller does nothing). */
  settle(d: NatsDelivery): boolean {
    if (d.settled) return false;
    d.settled = true;
    this.active.delete(d);
    this.schedule();
    return true;
  }

  async deadLetter(d: NatsDelivery, reason: string): Promise<void> {
    if (d.settled || d.deadLettering) return;
    d.deadLettering = true;
    try {
      await this.link.publishDeadLetter(d, reason);
    } catch (error) {
      if (this.settle(d)) this.nak(d, 1000);
      throw error;
    }
    if (this.settle(d)) this.respond(d, "ack");
  }

  private receive(msg: Msg, source: Source | undefined, info: AckInfo): void {
    if (!source || this.stopped) {
      respondQuietly(msg, encoder.encode("-NAK"));
      return;
    }
    source.pending = info.pending;
    const key = `${info.stream}.${info.streamSeq}`;
    const notBefore = Number(msg.headers?.get(NOT_BEFORE_HEADER) || 0);
    const early = notBefore - Date.now();
    if (early > EARLY_TOLERANCE_MS) {
      // Delayed enqueue: send it back for the time that remains, without blocking what follows.
      this.link.corrections.add(key);
      respondQuietly(msg, encoder.encode(`-NAK ${JSON.stringify({ delay: Math.ceil(early) * 1_000_000 })}`));
      this.schedule();
      return;
    }
    const count = Math.max(1, info.deliveryCount - this.link.corrections.get(key));
    const d = new NatsDelivery(this, source.queue, source.level, msg, info, count);
    if (count > this.link.options.maxDeliveries) {
      this.active.add(d);
      const reason =
        `Delivered ${count} times, over the transport's maxDeliveries (${this.link.options.maxDeliveries}); ` +
        "dead-lettered by the NATS transport.";
      void this.deadLetter(d, reason).catch(() => {});
      return;
    }
    if (this.held.length === 0 && this.active.size < this.concurrency) this.dispatch(d);
    else this.hold(d);
  }

  private dispatch(d: NatsDelivery): void {
    this.active.add(d);
    try {
      this.onDelivery(d);
    } catch {
      // A handler that throws synchronously has not processed the message: deliver it again.
      if (this.settle(d)) this.nak(d);
    }
  }

  private hold(d: NatsDelivery): void {
    let i = this.held.length;
    while (i > 0 && this.held[i - 1]!.level < d.level) i--;
    this.held.splice(i, 0, d);
    this.schedule();
  }

  private nak(d: NatsDelivery, delayMs?: number): void {
    this.respond(d, "nak", delayMs);
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

  // ---- pulling ----------------------------------------------------------------------------------

  private *sources(): Generator<Source> {
    for (const level of this.byLevel) yield* level;
  }

  private free(): number {
    return this.concurrency - this.active.size - this.held.length - this.requested;
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    queueMicrotask(() => this.pump());
  }

  private pump(): void {
    this.scheduled = false;
    if (this.stopped || this.needsEnsure || !this.link.connected()) return;
    while (this.held.length > 0 && this.active.size < this.concurrency) this.dispatch(this.held.shift()!);
    let free = this.free();
    for (const level of LEVELS_HIGH_FIRST) {
      if (free <= 0) return;
      const group = this.byLevel[level]!;
      // Sources of this level whose content is unknown share the free slots among their probes
      // (same level: their order does not matter); lower levels wait for the answers.
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
    const source = this.sourceByKey.get(`${info.stream}.${info.consumer}`);
    const f = source?.open.find((x) => x.received < x.batch);
    if (f) {
      f.received++;
      f.source.requested--;
      this.requested--;
    }
    this.receive(msg, source, info);
    if (f && f.received >= f.batch) this.endFetch(f, 200);
  }

  /** A pull is over: `code` 200 (its batch arrived), 404/408 (no more messages), else an error. */
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
      if (code === 409 || code === 503 || code === 0) this.recheckSoon();
    }
    if (s.pending === 0 && s.open.length === 0 && !s.arm && this.free() > 0) this.arm(s);
    this.schedule();
  }

  private arm(s: Source): void {
    if (this.concurrency === 0 || this.stopped) return;
    const subject = `${this.inbox}.a.${++this.seq}`;
    const idle = this.link.options.idlePullMs;
    const arm: Arm = {
      source: s,
      expiresAt: Date.now() + idle,
      sub: this.link.nc.subscribe(subject, { callback: (_err, msg) => this.onArmReply(arm, msg) }),
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
      // 408: expired with nothing new, so the level is still empty; anything else: look again.
      if (!current) return;
      const code = msg.headers?.code ?? 0;
      if (code === 408) {
        s.pending = 0;
        if (s.open.length === 0 && this.free() > 0) this.arm(s);
      } else {
        // 409 (e.g. too many waiting pulls, consumer deleted): check the consumer, a moment later.
        s.pending = undefined;
        if (code === 409) this.recheckSoon();
      }
      this.schedule();
      return;
    }
    const info = parseAckSubject(msg.reply);
    if (!info) return;
    this.receive(msg, s, info);
    if (current && s.pending === 0 && s.open.length === 0 && !s.arm && this.free() > 0) this.arm(s);
    this.schedule();
  }

  /** Cancels the idle pulls (unsubscribing ends a pull request); returns the drains. */
  private disarmAll(catchLate: boolean): Promise<unknown>[] {
    const drains: Promise<unknown>[] = [];
    for (const s of this.sources()) {
      const arm = s.arm;
      if (!arm) continue;
      s.arm = undefined;
      s.pending = undefined;
      // Draining still receives a message the server sent before it saw the unsubscribe.
      if (catchLate) drains.push(drain(arm.sub));
      else arm.sub.unsubscribe();
    }
    return drains;
  }

  private request(subject: string, body: object, reply: string): void {
    try {
      this.link.nc.publish(subject, encoder.encode(JSON.stringify(body)), { reply });
    } catch {
      // Closed or closing: the pull never left; the watchdog or the reconnect takes it from here.
    }
  }

  /** Stops pulling, then makes sure the streams and consumers exist before pulling again. */
  private recheckSoon(): void {
    if (this.needsEnsure) return;
    this.needsEnsure = true;
    this.ensureAfter = Date.now() + 500;
  }

  private reensure(): void {
    this.ensuring = true;
    Promise.all(this.queues.map((q) => this.link.ensure(q))).then(
      () => {
        this.ensuring = false;
        this.needsEnsure = false;
        this.schedule();
      },
      () => {
        this.ensuring = false;
        this.ensureAfter = Date.now() + 1000;
      },
    );
  }
}

function respondQuietly(msg: Msg, payload: Uint8Array): void {
  try {
    msg.respond(payload);
  } catch {
    // Closed: JetStream redelivers it after AckWait.
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
