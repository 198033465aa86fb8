/**
 * JetStream publishes, pipelined: every publish goes out at once (through the transport's outbox,
 * so the enqueues of one turn share a socket write) with a reply subject under one shared inbox
 * subscription, and its PubAck resolves it. No per-message timer and no `nc.request()`: the
 * transport's tick (a few times a second) times out unanswered publishes.
 * A publish that was not acknowledged (timeout, disconnect, no stream answering) is sent again
 * with the same Nats-Msg-Id, so JetStream stores it once. It fails with a PublishError once it has
 * been sent `attempts` times and `timeoutMs × attempts` have passed since the first send: a stream
 * that answers "unavailable" at once (no leader while a cluster elects one, a few seconds) is
 * asked again with a growing pause for that whole time, not given up after a second of quick
 * refusals. It never hangs.
 */
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { describeThrown, PublishError, StateError } from "../../src/errors.js";
import { indexOfBytes } from "./nats-headers.js";
import type { Outbox } from "./nats-outbox.js";

export interface PublisherOptions {
  timeoutMs: number;
  attempts: number;
  /** Called when no stream answered for `queue` (e.g. it was deleted or the server lost its store). */
  onMissingStream(queue: string): void;
}

interface PendingPublish {
  queue: string;
  subject: string;
  data: Uint8Array;
  headers: MsgHdrs;
  attempt: number;
  /** Past this, and after `attempts` sends, it fails. */
  giveUpAt: number;
  /** When the current send times out (0 while waiting to be re-sent). */
  deadline: number;
  /** When to send again (0 while a send is outstanding). */
  retryAt: number;
  lastError: string;
  resolve(): void;
  reject(error: Error): void;
}

const decoder = new TextDecoder();
/** `"error"`: a PubAck without it is a success, and is not parsed. */
const ERROR_KEY = Uint8Array.of(34, 101, 114, 114, 111, 114, 34);

export class JetStreamPublisher {
  private readonly pending = new Map<string, PendingPublish>();
  private idleWaiters: Array<() => void> = [];
  private readonly prefix: string;
  private readonly sub: Subscription;
  private seq = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly outbox: Outbox,
    private readonly options: PublisherOptions,
  ) {
    this.prefix = `${createInbox()}.`;
    this.sub = nc.subscribe(`${this.prefix}*`, { callback: (_err, msg) => this.onReply(msg) });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  publish(queue: string, subject: string, data: Uint8Array, headers: MsgHdrs): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const token = (++this.seq).toString(36);
      const p: PendingPublish = {
        queue,
        subject,
        data,
        headers,
        attempt: 0,
        giveUpAt: Date.now() + this.options.timeoutMs * this.options.attempts,
        deadline: 0,
        retryAt: 0,
        lastError: "",
        resolve,
        reject,
      };
      this.pending.set(token, p);
      this.send(token, p);
    });
  }

  /** Times out and re-sends; called by the transport's tick. */
  tick(now: number): void {
    for (const [token, p] of this.pending) {
      if (p.retryAt > 0) {
        if (now >= p.retryAt) this.send(token, p);
      } else if (now >= p.deadline) {
        this.retryOrFail(token, p, `no JetStream ack within ${this.options.timeoutMs} ms`);
      }
    }
  }

  /** After a reconnect: whatever was in flight may be lost; send it again now (same message id). */
  resendAll(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (this.exhausted(p, now)) {
        this.fail(token, p, "the connection was lost before the JetStream ack arrived");
      } else {
        this.send(token, p);
      }
    }
  }

  /**
   * A stream got a new leader (its old one died): the publishes to its queues sent to the old
   * one will get no answer, and those refused meanwhile can go now. Sent again at once.
   */
  resendWhere(ofQueue: (queue: string) => boolean): void {
    for (const [token, p] of this.pending) if (ofQueue(p.queue)) this.send(token, p);
  }

  /** Resolves once nothing is in flight, or after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Rejects everything still waiting (on close). */
  failAll(error: Error): void {
    for (const [token, p] of this.pending) {
      this.forget(token);
      p.reject(error);
    }
  }

  stop(): void {
    this.sub.unsubscribe();
  }

  private send(token: string, p: PendingPublish): void {
    p.attempt++;
    p.retryAt = 0;
    p.deadline = Date.now() + this.options.timeoutMs;
    if (!this.outbox.open) {
      this.closed(token, p, "the connection is closed");
      return;
    }
    const attempt = p.attempt;
    this.outbox.send(p.subject, p.data, `${this.prefix}${token}`, p.headers, (error) => {
      // Refused when the outbox flushed (closed meanwhile): unless something else already moved on.
      if (this.pending.get(token) !== p || p.attempt !== attempt || p.retryAt !== 0) return;
      if (this.nc.isClosed()) this.closed(token, p, describeThrown(error));
      else this.retryOrFail(token, p, describeThrown(error));
    });
  }

  private closed(token: string, p: PendingPublish, reason: string): void {
    this.forget(token);
    p.reject(new StateError(`The NATS connection closed before the message was sent: ${reason}`));
  }

  private onReply(msg: Msg): void {
    const token = msg.subject.slice(this.prefix.length);
    const p = this.pending.get(token);
    if (!p) return; // answered already (a re-send's duplicate ack)
    const status = msg.headers?.code ?? 0;
    if (status === 503) {
      this.options.onMissingStream(p.queue);
      this.retryOrFail(token, p, `no JetStream stream answered on "${p.subject}"`);
      return;
    }
    if (msg.data.length > 0 && indexOfBytes(msg.data, ERROR_KEY) < 0 && msg.data[0] === 123) {
      // `{"stream":…,"seq":…}`: stored (or a duplicate of what is stored).
      this.forget(token);
      p.resolve();
      return;
    }
    let ack: { error?: { code?: number; err_code?: number; description?: string }; stream?: string };
    try {
      ack = JSON.parse(decoder.decode(msg.data));
    } catch {
      this.retryOrFail(token, p, "an unreadable JetStream ack");
      return;
    }
    if (ack.error) {
      const { code, err_code, description } = ack.error;
      const what = `JetStream refused the message: ${description ?? "unknown error"} (code ${code}, ${err_code})`;
      // 503: JetStream is not ready (restarting, no quorum); anything else will not change by re-sending.
      if (code === 503) this.retryOrFail(token, p, what);
      else this.fail(token, p, what, false);
      return;
    }
    this.forget(token);
    p.resolve();
  }

  private retryOrFail(token: string, p: PendingPublish, reason: string): void {
    p.lastError = reason;
    const now = Date.now();
    if (this.exhausted(p, now)) {
      this.fail(token, p, reason);
      return;
    }
    p.deadline = 0;
    p.retryAt = now + Math.min(2000, 50 * 2 ** p.attempt);
  }

  private exhausted(p: PendingPublish, now: number): boolean {
    return p.attempt >= this.options.attempts && now >= p.giveUpAt;
  }

  private forget(token: string): void {
    this.pending.delete(token);
    if (this.pending.size === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private fail(token: string, p: PendingPublish, reason: string, retryable = true): void {
    this.forget(token);
    p.reject(
      new PublishError(
        `Could not enqueue to "${p.queue}" after ${p.attempt} attempt(s): ${reason}. ` +
          (retryable
            ? "Nothing is lost by enqueueing it again with the same dedupId (JetStream drops duplicates)."
            : "Check the stream's limits and the message."),
        { retryable },
      ),
    );
  }
}
