/**
 * The event log in one process: a bounded array of events (by count and age), one cursor per
 * durable group, members that compete for a group's events, per-key locks for ordered groups, and
 * dead letters kept per group (bounded). Deliveries are dispatched on setImmediate, like the
 * in-memory transport's, so a burst of events never starves timers.
 */
import type { Clock } from "../../src/clock.js";
import { StateError } from "../../src/errors.js";
import { DedupWindow } from "../dedup-window.js";
import {
  assertEventPattern,
  assertGroupName,
  type DeadEvent,
  type EventDelivery,
  type EventGroupInfo,
  type EventLog,
  type EventRecord,
  type GroupMember,
  type GroupSpec,
  patternMatches,
  type ResolvedEventLogOptions,
} from "../event-log.js";

interface Entry {
  seq: number;
  time: number;
  record: EventRecord;
}

interface Member {
  group: Group;
  concurrency: number;
  inHand: number;
  onEvent: (delivery: EventDelivery) => void;
  closed: boolean;
  /** Gives back each unsettled delivery (when the member leaves). */
  held: Set<() => void>;
}

interface Group {
  spec: GroupSpec;
  /** Durable: the next log sequence to look at. */
  cursor: number;
  /** Events taken from the log (or notified), not delivered yet, in sequence order. */
  ready: Entry[];
  /** Delivery counts of the events delivered at least once and not settled. */
  counts: Map<number, number>;
  inFlight: number;
  lockedKeys: Set<string>;
  members: Member[];
  next: number;
  dead: DeadEvent[];
}

/** A ready list scanned for an ordered group stops after this many entries blocked by their key. */
const MAX_SCAN = 1000;

export class MemoryEventLog implements EventLog {
  private log: Entry[] = [];
  private head = 0;
  private seq = 0;
  private readonly groupsByKey = new Map<string, Group>();
  private readonly dedup: DedupWindow;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly options: ResolvedEventLogOptions,
  ) {
    this.dedup = new DedupWindow(options.duplicateWindowMs, 100_000, () => clock.now());
  }

  async append(record: EventRecord): Promise<void> {
    this.assertOpen();
    if (this.dedup.add(record.id) === undefined) return;
    const entry: Entry = { seq: ++this.seq, time: this.clock.now(), record };
    this.log.push(entry);
    this.trim(entry.time);
    for (const g of this.groupsByKey.values()) {
      if (!g.spec.durable && patternMatches(g.spec.pattern, record.type)) g.ready.push(entry);
    }
    this.schedule();
  }

  async notify(record: EventRecord): Promise<void> {
    this.assertOpen();
    const entry: Entry = { seq: 0, time: this.clock.now(), record };
    for (const g of this.groupsByKey.values()) {
      if (!g.spec.durable && patternMatches(g.spec.pattern, record.type)) g.ready.push(entry);
    }
    this.schedule();
  }

  async join(spec: GroupSpec, onEvent: (delivery: EventDelivery) => void): Promise<GroupMember> {
    this.assertOpen();
    assertGroupName(spec.group);
    assertEventPattern(spec.pattern);
    const key = groupKey(spec.group, spec.pattern, spec.durable);
    let group = this.groupsByKey.get(key);
    if (!group) {
      group = {
        spec,
        cursor: this.startOf(spec),
        ready: [],
        counts: new Map(),
        inFlight: 0,
        lockedKeys: new Set(),
        members: [],
        next: 0,
        dead: [],
      };
      this.groupsByKey.set(key, group);
    }
    const member: Member = {
      group,
      concurrency: spec.concurrency,
      inHand: 0,
      onEvent,
      closed: false,
      held: new Set(),
    };
    group.members.push(member);
    this.schedule();
    return { close: async () => this.leave(member) };
  }

  async groups(): Promise<EventGroupInfo[]> {
    const out: EventGroupInfo[] = [];
    for (const g of this.groupsByKey.values()) {
      if (!g.spec.durable) continue;
      out.push({
        group: g.spec.group,
        pattern: g.spec.pattern,
        ordered: g.spec.ordered,
        durable: true,
        pending: g.ready.length + this.unread(g),
        inFlight: g.inFlight,
        deadLetters: g.dead.length,
        members: g.members.length,
      });
    }
    return out;
  }

  async deadLetters(group: string, pattern: string, limit: number): Promise<DeadEvent[]> {
    const g = this.groupsByKey.get(groupKey(group, pattern, true));
    return g ? g.dead.slice(-Math.max(0, limit)) : [];
  }

  async deleteGroup(group: string, pattern: string): Promise<boolean> {
    const key = groupKey(group, pattern, true);
    const g = this.groupsByKey.get(key);
    if (!g) return false;
    for (const m of g.members) m.closed = true;
    this.groupsByKey.delete(key);
    return true;
  }

  close(): void {
    this.closed = true;
    for (const g of this.groupsByKey.values()) for (const m of g.members) m.closed = true;
  }

  // ---- internals --------------------------------------------------------------------------------

  private startOf(spec: GroupSpec): number {
    const from = spec.from;
    const first = this.log[this.head]?.seq ?? this.seq + 1;
    if (!spec.durable || from === "new") return this.seq + 1;
    if (from === "all") return first;
    if ("sequence" in from) return Math.max(first, from.sequence);
    for (let i = this.head; i < this.log.length; i++) {
      const e = this.log[i] as Entry;
      if (e.time >= from.time) return e.seq;
    }
    return this.seq + 1;
  }

  private unread(g: Group): number {
    let n = 0;
    for (let i = this.indexOf(g.cursor); i < this.log.length; i++) {
      if (patternMatches(g.spec.pattern, (this.log[i] as Entry).record.type)) n++;
    }
    return n;
  }

  /** Index in `log` of the first entry at or after `seq`. */
  private indexOf(seq: number): number {
    const first = this.log[this.head]?.seq;
    if (first === undefined) return this.log.length;
    return this.head + Math.max(0, seq - first);
  }

  private trim(now: number): void {
    const { maxEvents, maxAgeMs } = this.options;
    while (this.head < this.log.length) {
      const oldest = this.log[this.head] as Entry;
      const live = this.log.length - this.head;
      if (!(maxEvents > 0 && live > maxEvents) && now - oldest.time < maxAgeMs) break;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.log.length) {
      this.log = this.log.slice(this.head);
      this.head = 0;
    }
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    if (this.closed) return;
    for (const g of this.groupsByKey.values()) this.dispatchGroup(g);
  }

  /** Moves matching log entries past the cursor into `ready`, as many as the members could take. */
  private fill(g: Group, want: number): void {
    if (!g.spec.durable) return;
    let i = this.indexOf(g.cursor);
    while (i < this.log.length && g.ready.length < want) {
      const e = this.log[i] as Entry;
      if (patternMatches(g.spec.pattern, e.record.type)) g.ready.push(e);
      i++;
    }
    g.cursor = i < this.log.length ? (this.log[i] as Entry).seq : this.seq + 1;
  }

  private dispatchGroup(g: Group): void {
    let free = 0;
    for (const m of g.members) free += Math.max(0, m.concurrency - m.inHand);
    if (free === 0) return;
    this.fill(g, free + (g.spec.ordered ? MAX_SCAN : 0));
    const blocked = new Set<string>();
    let scanned = 0;
    for (let i = 0; i < g.ready.length && free > 0 && scanned < MAX_SCAN; ) {
      const e = g.ready[i] as Entry;
      const key = e.record.key;
      if (g.spec.ordered && key !== undefined && (g.lockedKeys.has(key) || blocked.has(key))) {
        blocked.add(key);
        scanned++;
        i++;
        continue;
      }
      const member = this.nextMember(g);
      if (!member) break;
      g.ready.splice(i, 1);
      free--;
      this.deliver(g, member, e);
    }
    if (g.ready.length === 0 && g.spec.durable && g.cursor <= this.seq && free > 0) this.schedule();
  }

  private nextMember(g: Group): Member | undefined {
    for (let n = 0; n < g.members.length; n++) {
      const m = g.members[(g.next + n) % g.members.length] as Member;
      if (m.inHand < m.concurrency) {
        g.next = (g.next + n + 1) % g.members.length;
        return m;
      }
    }
    return undefined;
  }

  private deliver(g: Group, member: Member, e: Entry): void {
    const count = (g.counts.get(e.seq) ?? 0) + 1;
    if (g.spec.durable) g.counts.set(e.seq, count);
    member.inHand++;
    g.inFlight++;
    const key = e.record.key;
    if (g.spec.ordered && key !== undefined) g.lockedKeys.add(key);
    let settled = false;
    const settle = (back: boolean): boolean => {
      if (settled) return false;
      settled = true;
      member.held.delete(giveBack);
      member.inHand--;
      g.inFlight--;
      if (g.spec.ordered && key !== undefined) g.lockedKeys.delete(key);
      if (back && this.groupsByKey.get(groupKey(g.spec.group, g.spec.pattern, g.spec.durable)) === g) {
        insertInOrder(g.ready, e);
      } else g.counts.delete(e.seq);
      this.schedule();
      return true;
    };
    const giveBack = (): void => void settle(g.spec.durable);
    member.held.add(giveBack);
    const delivery: EventDelivery = {
      type: e.record.type,
      body: e.record.body,
      sequence: e.seq === 0 ? undefined : e.seq,
      deliveryCount: count,
      ack: () => void settle(false),
      release: () => void settle(true),
      inProgress: () => {},
      deadLetter: async (reason: string) => {
        if (settled) return;
        g.dead.push({
          group: g.spec.group,
          pattern: g.spec.pattern,
          type: e.record.type,
          body: e.record.body,
          reason,
          time: this.clock.now(),
        });
        if (g.dead.length > this.options.maxDeadLetters) g.dead.shift();
        settle(false);
      },
    };
    try {
      member.onEvent(delivery);
    } catch {
      settle(true);
    }
  }

  private leave(member: Member): void {
    if (member.closed) return;
    member.closed = true;
    const g = member.group;
    g.members = g.members.filter((m) => m !== member);
    g.next = 0;
    // Its unsettled deliveries go back (durable groups) or are dropped (non-durable: at most once).
    for (const giveBack of [...member.held]) giveBack();
    if (!g.spec.durable && g.members.length === 0) {
      this.groupsByKey.delete(groupKey(g.spec.group, g.spec.pattern, false));
    }
    this.schedule();
  }

  private assertOpen(): void {
    if (this.closed) throw new StateError("The in-memory transport is closed; its event log too.");
  }
}

function groupKey(group: string, pattern: string, durable: boolean): string {
  return `${durable ? "d" : "n"}\u0000${group}\u0000${pattern}`;
}

function insertInOrder(list: Entry[], e: Entry): void {
  let i = list.length;
  while (i > 0 && (list[i - 1] as Entry).seq > e.seq) i--;
  list.splice(i, 0, e);
}
