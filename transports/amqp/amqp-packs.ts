/**
 * Several tasks per broker message. RabbitMQ's cost is per message (about 80 µs of its CPU per
 * persistent, confirmed, acked message on a 2-core machine, whatever the payload), so the plain
 * enqueues of one turn of the event loop that go to the same queue at the same priority leave as
 * one message: the bodies, each prefixed by its length, and a header with their count. A lone
 * task stays a plain message (one call at a time pays nothing for this).
 *
 * The consumer hands each body over as a delivery of its own and acks the message once every one
 * of them is settled; see AmqpConsumer for how a worker still never holds more tasks than its free
 * slots, and how a redelivered pack is split into single messages.
 */
import type { ConsumeMessage, Options } from "amqplib";
import { H_PACK } from "./amqp-names.js";

/** Tasks per message unless configured (AmqpTransportOptions.maxTasksPerMessage). */
export const DEFAULT_MAX_TASKS_PER_MESSAGE = 8;

/** Bytes of a pack beyond which the turn's next tasks start another message. */
export const MAX_PACK_BYTES = 64 * 1024;

/** The bodies of a pack, one message's content: [u32 length][bytes] per task. */
export function encodePack(parts: readonly Buffer[]): Buffer {
  let size = 0;
  for (const part of parts) size += 4 + part.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const part of parts) {
    out.writeUInt32BE(part.length, offset);
    part.copy(out, offset + 4);
    offset += 4 + part.length;
  }
  return out;
}

/** The bodies of a pack of `count` tasks, or undefined if the content is not one. */
export function decodePack(content: Buffer, count: number): Buffer[] | undefined {
  const parts: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > content.length) return undefined;
    const length = content.readUInt32BE(offset);
    const end = offset + 4 + length;
    if (end > content.length) return undefined;
    parts.push(content.subarray(offset + 4, end));
    offset = end;
  }
  return offset === content.length ? parts : undefined;
}

type Send = (queue: string, content: Buffer, properties: Options.Publish) => Promise<void>;

interface Pending {
  queue: string;
  properties: Options.Publish;
  parts: Buffer[];
  bytes: number;
  settle: Array<[() => void, (error: unknown) => void]>;
}

/** Collects a turn's enqueues per queue and priority, and sends each group as one message. */
export class Packer {
  private readonly open = new Map<string, Pending>();
  private scheduled = false;
  private readonly flushNow = () => this.flush();
  /** Tasks and messages sent lately per queue (halved as they grow, so old traffic fades). */
  private readonly sent = new Map<string, { tasks: number; messages: number }>();

  constructor(
    private readonly maxTasks: number,
    private readonly send: Send,
  ) {}

  /** Queues a plain enqueue (no headers, no delay); resolves once the message carrying it is confirmed. */
  add(queue: string, content: Buffer, properties: Options.Publish): Promise<void> {
    const key = `${queue}\u0000${properties.priority ?? 0}`;
    let pending = this.open.get(key);
    if (pending !== undefined && pending.bytes + 4 + content.length > MAX_PACK_BYTES) {
      this.open.delete(key);
      this.sendPending(pending);
      pending = undefined;
    }
    if (pending === undefined) {
      pending = { queue, properties, parts: [], bytes: 0, settle: [] };
      this.open.set(key, pending);
    }
    const group = pending;
    const done = new Promise<void>((resolve, reject) => group.settle.push([resolve, reject]));
    pending.parts.push(content);
    pending.bytes += 4 + content.length;
    if (pending.parts.length >= this.maxTasks) {
      this.open.delete(key);
      this.sendPending(pending);
    } else if (!this.scheduled) {
      this.scheduled = true;
      // After the turn's microtasks: every enqueue of this turn has joined its group by then.
      process.nextTick(this.flushNow);
    }
    return done;
  }

  /** Tasks per message among those this process sent lately to `queue` (1 when it packed none). */
  tasksPerMessage(queue: string): number {
    const counts = this.sent.get(queue);
    return counts === undefined ? 1 : counts.tasks / counts.messages;
  }

  private flush(): void {
    this.scheduled = false;
    const groups = [...this.open.values()];
    this.open.clear();
    for (const pending of groups) this.sendPending(pending);
  }

  private sendPending(pending: Pending): void {
    const n = pending.parts.length;
    let counts = this.sent.get(pending.queue);
    if (counts === undefined) {
      counts = { tasks: 0, messages: 0 };
      this.sent.set(pending.queue, counts);
    }
    counts.tasks += n;
    counts.messages += 1;
    if (counts.messages > 1000) {
      counts.tasks /= 2;
      counts.messages /= 2;
    }
    let sent: Promise<void>;
    try {
      sent =
        n === 1
          ? this.send(pending.queue, pending.parts[0] as Buffer, pending.properties)
          : this.send(pending.queue, encodePack(pending.parts), {
              ...pending.properties,
              headers: { [H_PACK]: String(n) },
            });
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      () => {
        for (const [resolve] of pending.settle) resolve();
      },
      (error: unknown) => {
        for (const [, reject] of pending.settle) reject(error);
      },
    );
  }
}

/**
 * The largest pack a consumer has seen lately (over its last two windows of messages), which sets
 * how many more messages it may take: never more than its free slots could hold if each were that
 * large. What a consumer expects before it has seen any (`initial`) is a guess: too large, a worker
 * fed single messages runs below its concurrency until a window has passed; too small, the first
 * packs of a busy queue do not fit, and what does not is sent back to the queue.
 */
export class PackSizes {
  private max = 1;
  private seen = 0;

  constructor(private previous = 1) {}

  note(tasks: number, window: number): void {
    if (tasks > this.max) this.max = tasks;
    if (++this.seen >= window) {
      this.previous = this.max;
      this.max = 1;
      this.seen = 0;
    }
  }

  get largest(): number {
    return Math.max(this.max, this.previous);
  }
}

/**
 * A consumer's channel-wide prefetch: the messages it has in hand, plus as many more as its free
 * slots could take if each carried `largest` tasks. With single messages (`largest` 1) that is its
 * concurrency. A free slot left idle until a whole pack fits costs a small worker much (a quarter
 * or more of its slots), so one with `largest` over a quarter of its concurrency takes one more
 * message whenever a slot is free, and sends back what does not fit.
 */
export function prefetchFor(inHand: number, slots: number, concurrency: number, largest: number): number {
  const free = Math.max(0, slots);
  let more = Math.floor(free / Math.min(largest, Math.max(1, concurrency)));
  if (more === 0 && free > 0 && (inHand === 0 || 4 * largest > concurrency)) more = 1;
  return Math.max(1, inHand + more);
}

/** One body of a pack, as a message of its own (the same fields and properties as the pack). */
export function memberOf(pack: ConsumeMessage, content: Buffer): ConsumeMessage {
  return { fields: pack.fields, properties: pack.properties, content };
}
