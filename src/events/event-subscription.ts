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

interface Run {
  delivery: EventDelivery;
  event: BusEvent | undefined;
  key: string | undefined;
  touchedAt: number;
  controller?: AbortController;
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
      this.deadLetter({ delivery, event: undefined, key: undefined, touchedAt: 0 }, describeThrown(error));
      return;
    }
    if (this.options.notBefore !== undefined && event.time < this.options.notBefore) {
      delivery.ack();
      return;
    }
    const run: Run = { delivery, event, key: event.key, touchedAt: this.clock.now() };
    if (this.options.ordered && run.key !== undefined) {
      const waiting = this.queued.get(run.key);
      if (waiting) {
        waiting.push(run);
        return;
      }
      this.queued.set(run.key, []);
    }
    void this.run(run);
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
    for (const run of this.runs) run.controller?.abort(new Error("the subscription closed"));
    this.clock.clearTimeout(this.keepAlive);
    await this.member?.close();
  }

  private async run(run: Run): Promise<void> {
    this.runs.add(run);
    try {
      await this.attempt(run);
    } catch (error) {
      this.logger.error({ err: describeThrown(error), group: this.options.group }, "event settlement failed");
    } finally {
      this.runs.delete(run);
      this.next(run.key);
      if (this.runs.size === 0 && this.idleWaiters.length > 0)
        for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private next(key: string | undefined): void {
    if (key === undefined || !this.options.ordered) return;
    const waiting = this.queued.get(key);
    const following = waiting?.shift();
    if (!following) this.queued.delete(key);
    else void this.run(following);
  }

  private async attempt(run: Run): Promise<void> {
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
      const thrown = await this.invoke(run, event, attempt);
      if (thrown === undefined) {
        this.stats.handled++;
        delivery.ack();
        return;
      }
      this.stats.failedAttempts++;
      lastError = describeThrown(thrown);
      if (thrown instanceof UnrecoverableError) break;
      if (attempt <= retries) {
        await this.sleep(backoffDelay(this.options.retryBackoff, attempt));
      }
    }
    await this.deadLetter(run, lastError);
  }

  /** Runs the handler once: undefined on success, else what it threw (or the timeout). */
  private invoke(run: Run, event: BusEvent, attempt: number): Promise<unknown> {
    return new Promise<unknown>((resolve) => {
      let done = false;
      let timer: TimerHandle | undefined;
      const finish = (thrown: unknown) => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        run.controller = undefined;
        resolve(thrown);
      };
      const runner = this;
      const ctx: EventContext = {
        group: this.options.group,
        deliveryCount: run.delivery.deliveryCount,
        attempt,
        get signal(): AbortSignal {
          run.controller ??= new AbortController();
          if (runner.closing) run.controller.abort(new Error("the subscription closed"));
          return run.controller.signal;
        },
      };
      if (this.options.timeoutMs > 0) {
        timer = this.clock.setTimeout(() => {
          const error = new Error(
            `the handler did not finish within its timeoutMs of ${this.options.timeoutMs} ms`,
          );
          run.controller?.abort(error);
          finish(error);
        }, this.options.timeoutMs);
      }
      try {
        const value =
          event.headers["traceparent"] !== undefined
            ? otelContext.with(propagation.extract(ROOT_CONTEXT, event.headers), () =>
                this.handler(event, ctx),
              )
            : this.handler(event, ctx);
        if (value !== null && typeof (value as PromiseLike<unknown>)?.then === "function") {
          (value as PromiseLike<unknown>).then(
            () => finish(undefined),
            (error: unknown) => finish(error ?? new Error("the handler rejected with no reason")),
          );
        } else finish(undefined);
      } catch (error) {
        finish(error ?? new Error("the handler threw with no reason"));
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
