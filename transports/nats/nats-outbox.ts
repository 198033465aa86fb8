/**
 * Every publish of the transport (task events, acks and naks, pull requests, JetStream publishes)
 * goes through one outbox, in order, so that what one turn of the event loop sends leaves in one
 * socket write. The client writes on a microtask after its first publish, so an ack sent a few
 * promise hops after the event it follows ("publish the outcome, then ack") would otherwise cost a
 * write of its own. The outbox hands its messages to the client once the microtasks queued so far
 * have run (a `process.nextTick` scheduled from a microtask runs after the microtask queue drains),
 * still within the same turn: nothing waits for a timer or for I/O.
 *
 * Pull requests may wait a little longer: `sendLazily` leaves them for the next flush, at the
 * latest at the end of this turn (setImmediate), so renewing a pull after a message rides along
 * with the ack of that message instead of costing a write of its own.
 *
 * A burst that keeps the microtask queue busy (a loop of awaited publishes) would otherwise leave
 * in one piece only once it ends: every `SLICE` messages go to the client at once, whose own
 * flush (a microtask) then writes them while the burst goes on.
 *
 * Order is kept: messages leave in the order they were given, and ahead of anything sent after a
 * `flush()`. Subscriptions (SUB/UNSUB) bypass the outbox, so a pull always reaches the server after
 * the subscription its answers go to.
 */
import type { MsgHdrs, NatsConnection } from "@nats-io/transport-node";

interface Outgoing {
  subject: string;
  data: Uint8Array;
  reply: string | undefined;
  headers: MsgHdrs | undefined;
  /** Called with the error when the client refuses it at flush time (connection closed). */
  onError: ((error: unknown) => void) | undefined;
}

export class Outbox {
  /** Messages handed to the client at once, at most, in a burst that keeps the microtask queue busy. */
  static readonly SLICE = 256;
  private queue: Outgoing[] = [];
  private sentWaiters: Array<() => void> = [];
  private eager = false;
  private lazy = false;
  private readonly flushTick = (): void => {
    process.nextTick(this.flushNow);
  };
  private readonly flushNow = (): void => {
    this.eager = false;
    this.flush();
  };
  private readonly flushLazy = (): void => {
    this.lazy = false;
    this.flush();
  };

  constructor(private readonly nc: NatsConnection) {}

  /** False once the connection is closed for good: nothing given now would leave. */
  get open(): boolean {
    return !this.nc.isClosed();
  }

  /** Sent after the microtasks already queued have run, in this turn of the event loop. */
  send(
    subject: string,
    data: Uint8Array,
    reply?: string,
    headers?: MsgHdrs,
    onError?: (error: unknown) => void,
  ): void {
    this.queue.push({ subject, data, reply, headers, onError });
    // A burst (a publisher looping over promises never leaves the microtask queue) leaves in
    // slices as it grows, so the socket writes, and the receivers start, while it goes on.
    if (this.queue.length >= Outbox.SLICE) this.flush();
    else if (!this.eager) {
      this.eager = true;
      queueMicrotask(this.flushTick);
    }
  }

  /** Sent with the next flush, at the latest at the end of this turn of the event loop. */
  sendLazily(subject: string, data: Uint8Array, reply?: string): void {
    this.queue.push({ subject, data, reply, headers: undefined, onError: undefined });
    if (!this.eager && !this.lazy) {
      this.lazy = true;
      setImmediate(this.flushLazy);
    }
  }

  /**
   * Calls `callback` once everything given so far has been handed to the socket, still in this
   * turn: after the flush and after the client's write, which a publish queues as a microtask.
   */
  whenSent(callback: () => void): void {
    this.sentWaiters.push(callback);
    if (!this.eager) {
      this.eager = true;
      queueMicrotask(this.flushTick);
    }
  }

  /** Hands everything waiting to the client now (before a flush() round trip or a close). */
  flush(): void {
    if (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        try {
          if (m.headers !== undefined)
            this.nc.publish(m.subject, m.data, { reply: m.reply ?? "", headers: m.headers });
          else if (m.reply !== undefined) this.nc.publish(m.subject, m.data, { reply: m.reply });
          else this.nc.publish(m.subject, m.data);
        } catch (error) {
          // Closed meanwhile. Settlements are redelivered after AckWait, events are at most once,
          // pulls are placed again after the reconnect; a JetStream publish hears about it here.
          m.onError?.(error);
        }
      }
    }
    if (this.sentWaiters.length > 0) {
      const waiters = this.sentWaiters;
      this.sentWaiters = [];
      // After the client's write: a publish above (or an earlier one) queued it as a microtask.
      queueMicrotask(() => {
        for (const w of waiters) w();
      });
    }
  }
}
