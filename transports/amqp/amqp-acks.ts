/**
 * The acks of one consumer channel, sent together. Every delivery the channel receives is
 * registered here; `ack()` only marks it, and at the end of the current tick (once the promise
 * chains that settle deliveries have run) the marked ones leave as few frames as possible: one
 * `basic.ack` with `multiple` for those below the oldest delivery still unsettled, one plain
 * `basic.ack` each for the others. A `multiple` ack covers every unacked delivery up to its tag,
 * so it is only used up to the oldest delivery nobody has settled yet.
 *
 * Deferring to the end of the tick changes no order that matters: an outcome published on this
 * channel before its ack was asked for is already in the channel's buffer, ahead of the ack.
 */
import type { Channel, ConsumeMessage } from "amqplib";

export class ChannelAcks {
  /** Delivery tags received and not yet acked or nacked (in arrival order, which is tag order). */
  private readonly unsettled = new Set<number>();
  /** The same tags in order, with settled ones left behind until the front passes them. */
  private order: number[] = [];
  private head = 0;
  private pending: ConsumeMessage[] = [];
  private scheduled = false;
  private readonly flushNow = () => this.flush();
  /**
   * Deliveries the last flush acked. Their frames leave in the multiplexer pass that follows, so
   * they count as under way for it (several of them: one socket write for the pass).
   */
  lastFlushed = 0;

  constructor(readonly channel: Channel) {}

  /** Registers a delivery of this channel (before anything may settle it). */
  received(message: ConsumeMessage): void {
    const tag = message.fields.deliveryTag;
    this.unsettled.add(tag);
    this.order.push(tag);
    // A delivery held for long at the front keeps settled tags behind it: rebuild from the few unsettled.
    if (this.order.length - this.head > 2 * this.unsettled.size + 1024) {
      this.order = [...this.unsettled];
      this.head = 0;
    }
  }

  /** Marks a delivery acked; the frame leaves at the end of this tick. False if it was settled already. */
  ack(message: ConsumeMessage): boolean {
    if (!this.unsettled.delete(message.fields.deliveryTag)) return false;
    this.pending.push(message);
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.flushNow);
    }
    return true;
  }

  /** Gives a delivery back to its queue at once (requeue). */
  nack(message: ConsumeMessage): void {
    if (!this.unsettled.delete(message.fields.deliveryTag)) return;
    try {
      this.channel.nack(message, false, true);
    } catch {
      // The channel closed meanwhile: the broker returns the message to its queue.
    }
  }

  /** Deliveries received and not yet settled. */
  get size(): number {
    return this.unsettled.size;
  }

  /** Sends the acks marked so far. Called at the end of the tick, and before the channel closes. */
  flush(): void {
    this.scheduled = false;
    const pending = this.pending;
    if (pending.length === 0) return;
    this.pending = [];
    this.lastFlushed = pending.length;
    const oldest = this.oldestUnsettled();
    let last: ConsumeMessage | undefined;
    let below = 0;
    try {
      for (const message of pending) {
        const tag = message.fields.deliveryTag;
        if (tag < oldest) {
          below++;
          if (last === undefined || tag > last.fields.deliveryTag) last = message;
        } else {
          this.channel.ack(message);
        }
      }
      if (last !== undefined) this.channel.ack(last, below > 1);
    } catch {
      // The channel closed meanwhile: the broker has put these messages back already.
    }
  }

  private oldestUnsettled(): number {
    const order = this.order;
    while (this.head < order.length && !this.unsettled.has(order[this.head] as number)) this.head++;
    if (this.head > 1024 && this.head * 2 > order.length) {
      this.order = order.slice(this.head);
      this.head = 0;
    }
    return this.head < this.order.length ? (this.order[this.head] as number) : Number.POSITIVE_INFINITY;
  }
}
