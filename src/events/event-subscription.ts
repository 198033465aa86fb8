/**
 * One subscription's member of its group: runs the handler for each delivery, retries a failure
 * with back-off (holding the delivery, so an ordered key is not overtaken), then dead-letters it
 * with its last error; keeps long runs alive on brokers with an ack deadline; runs one key's
 * events one at a time in arrival order for ordered groups.
 */
import { context as otelContext, propagation, ROOT_CONTEXT } from "@opentelemetry/api";
import type { EventDelivery, GroupMember } from "../../transports/event-log.js";
import type { Clock, TimerHandle } from "../clock.js";
import { backoffDelay, type RetryBackoff } from "../config.js";
import { describeThrown, UnrecoverableError } from "../errors.js";
import type { Logger } from "../logger.js";
import { type BusEvent, decodeEvent } from "./event-codec.js";

export interface EventContext {
  /** The group this member belongs to. */
  readonly group: string;
  /** 1 on the first delivery to the group; more after a member died or stopped holding it. */
  readonly deliveryCount: number;
  /** 1, 2, … over this delivery's retries. */
  readonly attempt: number;
  /** Aborted on timeout and when the subscription closes. */
  readonly signal: AbortSignal;
}

export type EventHandler<T = unknown> = (event: BusEvent<T>, ctx: EventContext) => unknown;

export interface RunnerOptions {
  group: string;
  retries: number;
  retryBackoff: RetryBackoff;
  timeoutMs: number;
  ordered: boolean;
  /** Deliveries beyond this many redeliveries without a settlement (members dying) are dead-lettered. */
  maxRedeliveries: number;
  /** The log's redelivery deadline: long runs are kept alive well within it. */
  ackDeadlineMs: number | undefined;
  /** A replay from a time: events published before it (the broker starts a little early) are skipped. */
  notBefore?: number;
}

export interface SubscriptionStats {
  handled: number;
  failedAttempts: number;
  deadLettered: number;
  /** Deliveries that were redelivered (deliveryCount > 1): the duplicates at-least-once allows. */
  redelivered: number;
}

interface Call {
  value: unknown;
  /** Set when the handler threw synchronously. */
  thrown: unknown;
}

function isThenable(value: unknown): boolean {
  try {
    return value !== null && typeof (value as PromiseLike<unknown>)?.then === "function";
  } catch {
    return false; // a Proxy whose reads throw: a value, not a promise
  }
}

/** Whether a thrown value asks for no retry; false for values whose prototype cannot be read. */
function isUnrecoverable(thrown: unknown): boolean {
  try {
    return thrown instanceof UnrecoverableError;
  } catch {
    return false;
  }
}

interface Run {
  delivery: EventDelivery;
  event: BusEvent | undefined;
  key: string | undefined;
  touchedAt: number;
  /** The context of its current attempt (its signal, once asked for). */
  ctx: HandlerContext | undefined;
}

/** A handler's `ctx`: one small object per attempt, its AbortController made only when asked for. */
class HandlerContext implements EventContext {
  controller: AbortController | undefined = undefined;
  constructor(
    private readonly runner: EventRunner,
    readonly deliveryCount: number,
    readonly attempt: number,
  ) {}
  get group(): string {
    return this.runner.group;
  }
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.runner.isClosing) this.controller.abort(new Error("the subscription closed"));
    return this.controller.signal;
  }
  abort(reason: Error): void {
    this.controller?.abort(reason);
  }
}

export class EventRunner {
  readonly stats: SubscriptionStats = { handled: 0, failedAttempts: 0, deadLettered: 0, redelivered: 0 };
  member?: GroupMember;
  private readonly runs = new Set<Run>();
  /** Ordered groups: deliveries waiting behind a running one of the same key. */
  private readonly queued = new Map<string, Run[]>();
  private closing = false;
  private idleWaiters: Array<() => void> = [];
  private keepAlive?: TimerHandle;

  constructor(
    private readonly handler: EventHandler,
    private readonly options: RunnerOptions,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    if (options.ackDeadlineMs !== undefined) this.scheduleKeepAlive();
  }

  /** Called by the log for each delivery. */
  readonly onEvent = (delivery: EventDelivery): void => {
    if (this.closing) {
      delivery.release();
      return;
    }
    if (delivery.deliveryCount > 1) this.stats.redelivered++;
    let event: BusEvent | undefined;
    try {
      event = decodeEvent(delivery.body, delivery.sequence);
    } catch (error) {
      this.deadLetter(
        { delivery, event: undefined, key: undefined, touchedAt: 0, ctx: undefined },
        describeThrown(error),
      );
      return;
    }
    if (this.options.notBefore !== undefined && event.time < this.options.notBefore) {
      delivery.ack();
      return;
    }
    const key = event.key;
    if (this.options.ordered && key !== undefined) {
      const waiting = this.queued.get(key);
      if (waiting) {
        waiting.push({ delivery, event, key, touchedAt: this.clock.now(), ctx: undefined });
        return;
      }
      this.queued.set(key, []);
    }
    if (this.closing || delivery.deliveryCount > 1 + this.options.maxRedeliveries) {
      void this.run({ delivery, event, key, touchedAt: this.clock.now(), ctx: undefined }, undefined);
      return;
    }
    // The first attempt runs at once; a handler that returns without a promise is settled here,
    // with no promise, run record or result object of ours (most of the cost of a light handler).
    const ctx = new HandlerContext(this, delivery.deliveryCount, 1);
    let value: unknown;
    try {
      value = this.invoke(event, ctx);
    } catch (error) {
      const run: Run = { delivery, event, key, touchedAt: this.clock.now(), ctx };
      void this.run(run, {
        value: undefined,
        thrown: error ?? new Error("the handler threw with no reason"),
      });
      return;
    }
    if (!isThenable(value)) {
      this.stats.handled++;
      delivery.ack();
      if (key !== undefined) this.next(key);
      return;
    }
    void this.run({ delivery, event, key, touchedAt: this.clock.now(), ctx }, { value, thrown: undefined });
  };

  /** Stops taking deliveries; waits up to `timeoutMs` for the running handlers, then gives the rest back. */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    for (const waiting of this.queued.values()) for (const r of waiting.splice(0)) r.delivery.release();
    if (this.runs.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          this.clock.clearTimeout(timer);
          resolve();
        });
      });
    }
    for (const run of this.runs) run.ctx?.abort(new Error("the subscription closed"));
    this.clock.clearTimeout(this.keepAlive);
    await this.member?.close();
  }

  private async run(run: Run, first: Call | undefined): Promise<void> {
    this.runs.add(run);
    try {
      await this.attempt(run, first);
    } catch (error) {
      // Never left unsettled (it would hold a slot of this member for good): dead-lettered.
      this.logger.error({ err: describeThrown(error), group: this.options.group }, "event settlement failed");
      await this.deadLetter(run, `the event could not be settled: ${describeThrown(error)}`).catch(() => {});
    } finally {
      this.runs.delete(run);
      this.next(run.key);
      if (this.runs.size === 0 && this.idleWaiters.length > 0)
        for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  get group(): string {
    return this.options.group;
  }

  private next(key: string | undefined): void {
    if (key === undefined || !this.options.ordered) return;
    const waiting = this.queued.get(key);
    const following = waiting?.shift();
    if (!following) this.queued.delete(key);
    else void this.run(following, undefined);
  }

  private async attempt(run: Run, first: Call | undefined): Promise<void> {
    const { delivery } = run;
    const event = run.event as BusEvent;
    const { retries, maxRedeliveries } = this.options;
    if (delivery.deliveryCount > 1 + maxRedeliveries) {
      await this.deadLetter(
        run,
        `Delivered ${delivery.deliveryCount} times without being settled (its members stopped or died ` +
          `during it more than maxRedeliveries = ${maxRedeliveries} times); dead-lettered as a poison event.`,
      );
      return;
    }
    let lastError = "";
    for (let attempt = 1; attempt <= retries + 1; attempt++) {
      if (this.closing) {
        delivery.release();
        return;
      }
      const failed = await this.settle(run, attempt === 1 && first ? first : this.call(run, event, attempt));
      if (failed === undefined) {
        this.stats.handled++;
        delivery.ack();
        return;
      }
      this.stats.failedAttempts++;
      lastError = describeThrown(failed.thrown);
      if (isUnrecoverable(failed.thrown)) break;
      if (attempt <= retries) {
        await this.sleep(backoffDelay(this.options.retryBackoff, attempt));
      }
    }
    await this.deadLetter(run, lastError);
  }

  /** Calls the handler once: what it returned, or what it threw synchronously. */
  private call(run: Run, event: BusEvent, attempt: number): Call {
    const ctx = new HandlerContext(this, run.delivery.deliveryCount, attempt);
    run.ctx = ctx;
    try {
      return { value: this.invoke(event, ctx), thrown: undefined };
    } catch (error) {
      return { value: undefined, thrown: error ?? new Error("the handler threw with no reason") };
    }
  }

  /** The handler's call, in the publisher's trace context when the event carries one. */
  private invoke(event: BusEvent, ctx: HandlerContext): unknown {
    return event.headers["traceparent"] !== undefined
      ? otelContext.with(propagation.extract(ROOT_CONTEXT, event.headers), () => this.handler(event, ctx))
      : this.handler(event, ctx);
  }

  /** Whether this member is stopping (a handler's `ctx.signal` is then aborted). */
  get isClosing(): boolean {
    return this.closing;
  }

  /**
   * Waits for a call's outcome: undefined on success, else what it threw (or the timeout), boxed:
   * a promise resolved with a thrown value itself would read its `then` (a Proxy's trap may throw).
   */
  private settle(run: Run, call: Call): Promise<{ thrown: unknown } | undefined> {
    if (call.thrown !== undefined) return Promise.resolve({ thrown: call.thrown });
    if (!isThenable(call.value)) return Promise.resolve(undefined);
    return new Promise<{ thrown: unknown } | undefined>((resolve) => {
      let done = false;
      let timer: TimerHandle | undefined;
      const finish = (thrown: unknown) => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        resolve(thrown === undefined ? undefined : { thrown });
      };
      if (this.options.timeoutMs > 0) {
        timer = this.clock.setTimeout(() => {
          const error = new Error(
            `the handler did not finish within its timeoutMs of ${this.options.timeoutMs} ms`,
          );
          run.ctx?.abort(error);
          finish(error);
        }, this.options.timeoutMs);
      }
      try {
        (call.value as PromiseLike<unknown>).then(
          () => finish(undefined),
          (error: unknown) => finish(error ?? new Error("the handler rejected with no reason")),
        );
      } catch (error) {
        finish(error ?? new Error("the handler returned a thenable whose then() threw"));
      }
    });
  }

  private async deadLetter(run: Run, reason: string): Promise<void> {
    this.stats.deadLettered++;
    this.logger.warn(
      { group: this.options.group, type: run.delivery.type, eventId: run.event?.id, reason },
      "event dead-lettered",
    );
    try {
      await run.delivery.deadLetter(reason);
    } catch (error) {
      // Not stored: give it back, a later delivery tries again.
      this.logger.warn(
        { err: describeThrown(error) },
        "could not dead-letter an event; it will be redelivered",
      );
      run.delivery.release();
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }

  /** Every third of the ack deadline: tells the broker the runs older than that are still going. */
  private scheduleKeepAlive(): void {
    const every = Math.max(50, Math.floor((this.options.ackDeadlineMs as number) / 3));
    this.keepAlive = this.clock.setTimeout(() => {
      const now = this.clock.now();
      for (const run of this.runs) {
        if (now - run.touchedAt >= every) {
          run.touchedAt = now;
          run.delivery.inProgress();
        }
      }
      for (const waiting of this.queued.values()) for (const r of waiting) r.delivery.inProgress();
      if (!this.closing) this.scheduleKeepAlive();
    }, every);
  }
}
