/**
 * Entity mailboxes in one process: per partition a FIFO and a line of claims, the first of which
 * holds it (RabbitMQ's single active consumer, in memory). Messages not acked when the holder lets
 * go are put back at the front, in order, before the next claim takes over. Dispatch runs on
 * setImmediate, batched over every partition with work, so a burst never starves timers.
 */
import { type Clock, systemClock } from "../../src/clock.js";
import { ConfigError, PayloadTooLargeError, StateError } from "../../src/errors.js";
import { DedupWindow } from "../dedup-window.js";
import {
  assertPartition,
  type EntityMailbox,
  type HoldOptions,
  type MailboxHandler,
  type MailboxMessage,
  type MailboxSendOptions,
  type PartitionHold,
} from "../entity-mailbox.js";
import type { Bytes } from "../transport.js";

interface Message {
  seq: number;
  body: Bytes;
  deliveries: number;
}

interface Partition {
  readonly index: number;
  /** FIFO from `head`; compacted now and then. */
  queue: Message[];
  head: number;
  /** In line for the partition; the first one holds it. */
  readonly claims: Claim[];
}

interface Box {
  readonly partitions: number;
  readonly parts: Partition[];
}

export interface MemoryMailboxOptions {
  clock?: Clock;
  maxPayloadBytes: number;
  /** How long a send id is remembered (de-duplication). */
  dedupWindowMs?: number;
  dedupMaxEntries?: number;
}

export class MemoryEntityMailbox implements EntityMailbox {
  private readonly boxes = new Map<string, Box>();
  private readonly clock: Clock;
  private readonly dedup: DedupWindow;
  private readonly dirty = new Set<Partition>();
  private scheduled = false;
  private seq = 0;
  private closed = false;

  constructor(private readonly options: MemoryMailboxOptions) {
    this.clock = options.clock ?? systemClock;
    const clock = this.clock;
    this.dedup = new DedupWindow(options.dedupWindowMs ?? 120_000, options.dedupMaxEntries ?? 100_000, () =>
      clock.now(),
    );
  }

  async send(
    box: string,
    partitions: number,
    partition: number,
    body: Bytes,
    options?: MailboxSendOptions,
  ): Promise<void> {
    const part = this.partition(box, partitions, partition, body);
    if (options?.id !== undefined && this.dedup.add(`${box}/${options.id}`) === undefined) return;
    this.append(part, body);
  }

  async sendLater(
    box: string,
    partitions: number,
    partition: number,
    body: Bytes,
    delayMs: number,
    options?: MailboxSendOptions,
  ): Promise<void> {
    const part = this.partition(box, partitions, partition, body);
    this.clock.setTimeout(
      () => {
        if (this.closed) return;
        if (options?.id !== undefined && this.dedup.add(`${box}/${options.id}`) === undefined) return;
        this.append(part, body);
      },
      Math.max(0, delayMs),
    );
  }

  async hold(
    box: string,
    partitions: number,
    partition: number,
    onMessage: MailboxHandler,
    options: HoldOptions,
  ): Promise<PartitionHold> {
    const part = this.partition(box, partitions, partition);
    const claim = new Claim(this, part, onMessage, options);
    part.claims.push(claim);
    this.markDirty(part);
    return claim;
  }

  async depth(box: string, partitions: number, partition: number): Promise<number> {
    const part = this.partition(box, partitions, partition);
    return part.queue.length - part.head;
  }

  async remove(box: string, partitions: number): Promise<void> {
    assertPartition(box, partitions);
    const known = this.boxes.get(box);
    if (!known) return;
    for (const part of known.parts) for (const claim of [...part.claims]) await claim.release();
    this.boxes.delete(box);
  }

  /** Drops every box and stops dispatching (the transport closed). */
  close(): void {
    this.closed = true;
    this.boxes.clear();
    this.dirty.clear();
  }

  // ---- internals used by Claim ------------------------------------------------------------------

  /** @internal Puts messages back at the front of their partition, in order. */
  giveBack(part: Partition, messages: Message[]): void {
    if (messages.length === 0) return;
    messages.sort((a, b) => a.seq - b.seq);
    part.queue = [...messages, ...part.queue.slice(part.head)];
    part.head = 0;
    this.markDirty(part);
  }

  /** @internal */
  leave(part: Partition, claim: Claim): void {
    const i = part.claims.indexOf(claim);
    if (i >= 0) part.claims.splice(i, 1);
    this.markDirty(part);
  }

  /** @internal */
  markDirty(part: Partition): void {
    if (this.closed) return;
    this.dirty.add(part);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.dispatch());
  }

  private dispatch(): void {
    this.scheduled = false;
    const dirty = [...this.dirty];
    this.dirty.clear();
    for (const part of dirty) {
      const holder = part.claims[0];
      if (!holder) continue;
      while (part.head < part.queue.length && holder.hasRoom()) {
        const message = part.queue[part.head] as Message;
        part.queue[part.head] = undefined as unknown as Message;
        part.head++;
        holder.deliver(message);
      }
      if (part.head > 1024 && part.head * 2 > part.queue.length) {
        part.queue = part.queue.slice(part.head);
        part.head = 0;
      }
    }
  }

  private append(part: Partition, body: Bytes): void {
    part.queue.push({ seq: ++this.seq, body, deliveries: 0 });
    this.markDirty(part);
  }

  private partition(box: string, partitions: number, partition: number, body?: Bytes): Partition {
    if (this.closed) throw new StateError("This in-memory entity mailbox is closed (its transport closed).");
    assertPartition(box, partitions, partition);
    if (body !== undefined && body.byteLength > this.options.maxPayloadBytes) {
      throw new PayloadTooLargeError(body.byteLength, this.options.maxPayloadBytes, "entity message");
    }
    let known = this.boxes.get(box);
    if (!known) {
      known = {
        partitions,
        parts: Array.from({ length: partitions }, (_, index) => ({ index, queue: [], head: 0, claims: [] })),
      };
      this.boxes.set(box, known);
    } else if (known.partitions !== partitions) {
      throw new ConfigError(
        `The entity mailbox "${box}" has ${known.partitions} partitions here, not ${partitions}. Every ` +
          "process must define the entity with the same partitions option (changing it needs the mailbox drained).",
      );
    }
    return known.parts[partition] as Partition;
  }
}

class Claim implements PartitionHold {
  private readonly inHand = new Set<Message>();
  private released = false;

  constructor(
    private readonly mailbox: MemoryEntityMailbox,
    private readonly part: Partition,
    private readonly onMessage: MailboxHandler,
    private readonly options: HoldOptions,
  ) {}

  get partition(): number {
    return this.part.index;
  }

  hasRoom(): boolean {
    return !this.released && this.inHand.size < this.options.inFlight;
  }

  deliver(message: Message): void {
    message.deliveries++;
    this.inHand.add(message);
    const claim = this;
    const delivered: MailboxMessage = {
      partition: this.part.index,
      body: message.body,
      deliveryCount: message.deliveries,
      ack() {
        if (claim.inHand.delete(message)) claim.mailbox.markDirty(claim.part);
      },
    };
    try {
      this.onMessage(delivered);
    } catch {
      // A handler that throws has not taken the message: it stays in hand until released.
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const back = [...this.inHand];
    this.inHand.clear();
    this.mailbox.leave(this.part, this);
    this.mailbox.giveBack(this.part, back);
  }
}
