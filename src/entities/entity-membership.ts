/**
 * Who holds entities: every entity runtime (one per worker) heartbeats the types it hosts on a
 * fan-out subject; each keeps the set of holders it heard from lately. A partition belongs to the
 * holder that ranks highest for it (rendezvous hashing): every holder computes the same owner from
 * the same set, and a holder joining or leaving moves only its share of partitions. The views may
 * differ for a moment (a beat in flight): the mailbox lets only one claim hold a partition at a time,
 * so that costs a hand-over, never an event out of order.
 */
import type { Subscription, Transport } from "../../transports/transport.js";
import { type Clock, every } from "../clock.js";
import { decodeMessage, encode } from "../codec.js";
import { describeThrown } from "../errors.js";
import type { Logger } from "../logger.js";
import { entitySubjects } from "./entity-backends.js";

interface Beat {
  v: 1;
  kind: "beat" | "hello" | "bye";
  holder: string;
  boxes: string[];
}

interface Member {
  boxes: Set<string>;
  seenAt: number;
}

export interface MembershipOptions {
  holder: string;
  boxes: () => string[];
  /** A holder not heard from for this long is gone. Beats go out four times per period. */
  timeoutMs: number;
  clock: Clock;
  logger: Logger;
  /** Called when the holders of any box changed. */
  onChange: () => void;
}

export class EntityMembership {
  private readonly members = new Map<string, Member>();
  private sub?: Subscription;
  private stopBeats?: () => void;
  private lastHelloAnswer = 0;

  constructor(
    private readonly transport: Transport,
    private readonly options: MembershipOptions,
  ) {}

  async start(): Promise<void> {
    this.sub = await this.transport.subscribe(entitySubjects.members, (m) => this.onBeat(m.body));
    const period = Math.max(50, Math.floor(this.options.timeoutMs / 4));
    this.stopBeats = every(this.options.clock, period, () => {
      void this.beat("beat");
      this.expire();
    });
    await this.beat("hello");
  }

  async stop(): Promise<void> {
    this.stopBeats?.();
    await this.beat("bye");
    await this.sub?.unsubscribe().catch(() => {});
    this.members.clear();
  }

  /** Live holders of a box, this one included, sorted. */
  holdersOf(box: string): string[] {
    const out = [this.options.holder];
    for (const [holder, m] of this.members) if (m.boxes.has(box)) out.push(holder);
    return out.sort();
  }

  /** Tells the others at once (after registering a type on a running worker). */
  announce(): Promise<void> {
    return this.beat("beat");
  }

  private async beat(kind: Beat["kind"]): Promise<void> {
    if (this.transport.state === "closed") return;
    const beat: Beat = { v: 1, kind, holder: this.options.holder, boxes: this.options.boxes() };
    try {
      await this.transport.publish(
        entitySubjects.members,
        encode(beat, this.transport.maxPayloadBytes, "entity holder beat"),
      );
    } catch (error) {
      this.options.logger.warn(
        { err: describeThrown(error) },
        "could not publish an entity holder heartbeat",
      );
    }
  }

  private onBeat(body: Uint8Array): void {
    let beat: Beat;
    try {
      const r = decodeMessage(body, "entity holder beat");
      if (typeof r["holder"] !== "string" || !Array.isArray(r["boxes"])) return;
      beat = r as unknown as Beat;
    } catch {
      return;
    }
    if (beat.holder === this.options.holder) return;
    const now = this.options.clock.now();
    const known = this.members.get(beat.holder);
    if (beat.kind === "bye") {
      if (known) {
        this.members.delete(beat.holder);
        this.options.onChange();
      }
      return;
    }
    const boxes = new Set(beat.boxes.filter((b): b is string => typeof b === "string"));
    this.members.set(beat.holder, { boxes, seenAt: now });
    const changed = !known || !sameSet(known.boxes, boxes);
    if (beat.kind === "hello" && now - this.lastHelloAnswer > 100) {
      this.lastHelloAnswer = now;
      void this.beat("beat"); // a newcomer learns about this holder at once
    }
    if (changed) this.options.onChange();
  }

  private expire(): void {
    const limit = this.options.clock.now() - this.options.timeoutMs;
    let changed = false;
    for (const [holder, m] of this.members) {
      if (m.seenAt < limit) {
        this.members.delete(holder);
        changed = true;
        this.options.logger.warn(
          { holder },
          "entity holder silent past its failover time; its partitions move",
        );
      }
    }
    if (changed) this.options.onChange();
  }
}

/** The holder a partition belongs to: the highest rank of (box, partition, holder). */
export function ownerOf(box: string, partition: number, holders: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestRank = -1;
  for (const holder of holders) {
    const rank = mix(`${box}\u0000${partition}\u0000${holder}`);
    if (rank > bestRank || (rank === bestRank && best !== undefined && holder < best)) {
      best = holder;
      bestRank = rank;
    }
  }
  return best;
}

/** FNV-1a with a murmur3 finaliser: similar strings get unrelated ranks. */
function mix(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}
