/**
 * Runs one attempt of a handler: its context, the timeout, and whatever happens turned into an
 * Outcome. Never throws. One TaskRun object per attempt is the handler's context, the way to abort
 * it and the run itself; the AbortController behind `ctx.signal` and the function behind
 * `ctx.progress` are made only when the handler reads them, so the common path allocates little.
 */
import { context as otelContext, propagation, ROOT_CONTEXT } from "@opentelemetry/api";
import type { Delivery } from "../transports/transport.js";
import type { Clock, TimerHandle } from "./clock.js";
import { describeThrown, TaskCancelledError, TaskTimeoutError, UnrecoverableError } from "./errors.js";
import type { TaskContext, TaskHandler } from "./types.js";

export type Outcome =
  | { kind: "completed"; result: unknown }
  | { kind: "failed"; error: string; unrecoverable?: boolean }
  | { kind: "timeout"; error: string }
  | { kind: "cancelled"; error: string }
  /** The worker is stopping without draining: the attempt is abandoned, the broker redelivers it. */
  | { kind: "abandoned"; error: string };

/** Reason for aborting a run because its worker stops without draining. */
export class AbandonedRun extends Error {
  constructor() {
    super("The worker stopped before the task finished; the task will be delivered again.");
    this.name = "AbandonedRun";
  }
}

const noProgress = (): Promise<void> => Promise.resolve();

/**
 * One attempt of a task: the handler's context, cancelled by timeout, cancellation or shutdown.
 * Its own state is in #private fields: the handler sees the TaskContext and nothing else.
 */
export class TaskRun implements TaskContext {
  #controller?: AbortController;
  #reason?: unknown;
  #progress?: () => Promise<void>;
  #resolve?: (outcome: Outcome) => void;
  #timer?: TimerHandle;
  #clock?: Clock;
  #timeoutMs = 0;
  /** The handler returned or threw (false while it runs, also after its outcome if it ignored an abort). */
  #settled = false;
  #onSettled?: () => void;
  /** The delivery being worked on (none for Worker.executeTask). */
  readonly #delivery?: Delivery;

  constructor(
    readonly taskId: string,
    readonly taskType: string,
    readonly attempt: number,
    readonly workerId: string,
    readonly metadata: Record<string, unknown>,
    readonly tags: readonly string[],
    readonly headers: Readonly<Record<string, string>>,
    delivery?: Delivery,
  ) {
    this.#delivery = delivery;
  }

  /** Tells the broker the task is still being worked on (the worker's keep-alive). */
  touch(): Promise<void> {
    return this.#delivery?.inProgress() ?? Promise.resolve();
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** A function (not a method), so that `const { progress } = ctx` works too. */
  get progress(): () => Promise<void> {
    const delivery = this.#delivery;
    if (!delivery) return noProgress;
    this.#progress ??= () => delivery.inProgress();
    return this.#progress;
  }

  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  /** Aborts the run: TaskTimeoutError, TaskCancelledError, or AbandonedRun (shutdown). */
  abort(reason: unknown): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    if (this.#resolve) this.#finish(outcomeOfAbort(reason));
  }

  /** Runs the handler once; resolves with what happened (never rejects). */
  run(handler: TaskHandler, data: unknown, timeoutMs: number, clock: Clock): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      if (this.#reason !== undefined) {
        this.#settled = true; // the handler never starts
        return resolve(outcomeOfAbort(this.#reason));
      }
      this.#resolve = resolve;
      this.#clock = clock;
      this.#timeoutMs = timeoutMs;
      this.#timer = clock.setTimeout(this.#onTimeout, timeoutMs);
      try {
        const value =
          this.headers["traceparent"] !== undefined
            ? otelContext.with(propagation.extract(ROOT_CONTEXT, this.headers), () => handler(data, this))
            : handler(data, this);
        if (value !== null && typeof (value as PromiseLike<unknown>)?.then === "function") {
          (value as PromiseLike<unknown>).then(this.#onResult, this.#onError);
        } else {
          this.#onResult(value);
        }
      } catch (thrown) {
        this.#onError(thrown);
      }
    });
  }

  readonly #onTimeout = (): void => {
    this.abort(new TaskTimeoutError(this.taskId, this.#timeoutMs));
  };

  readonly #onResult = (result: unknown): void => {
    this.#handlerSettled();
    this.#finish({ kind: "completed", result });
  };

  readonly #onError = (thrown: unknown): void => {
    this.#handlerSettled();
    this.#finish(
      this.#reason !== undefined
        ? outcomeOfAbort(this.#reason)
        : {
            kind: "failed",
            error: describeThrown(thrown),
            unrecoverable: isUnrecoverable(thrown),
          },
    );
  };

  /**
   * True while the handler has not returned: after its outcome, that is a handler that ignored
   * `ctx.signal` (a timeout, a cancellation) and goes on running, abandoned.
   */
  get handlerRunning(): boolean {
    return !this.#settled;
  }

  /** Calls `fn` once the handler returns or throws (never, if it never does). */
  whenHandlerSettles(fn: () => void): void {
    if (this.#settled) fn();
    else this.#onSettled = fn;
  }

  #handlerSettled(): void {
    if (this.#settled) return;
    this.#settled = true;
    const fn = this.#onSettled;
    this.#onSettled = undefined;
    fn?.();
  }

  #finish(outcome: Outcome): void {
    const resolve = this.#resolve;
    if (!resolve) return;
    this.#resolve = undefined;
    this.#clock?.clearTimeout(this.#timer);
    resolve(outcome);
  }
}

/** `thrown instanceof UnrecoverableError`, false where even asking throws (a hostile Proxy). */
function isUnrecoverable(thrown: unknown): boolean {
  try {
    return thrown instanceof UnrecoverableError;
  } catch {
    return false;
  }
}

function outcomeOfAbort(reason: unknown): Outcome {
  if (reason instanceof TaskTimeoutError) return { kind: "timeout", error: reason.message };
  if (reason instanceof TaskCancelledError) return { kind: "cancelled", error: reason.message };
  return { kind: "abandoned", error: describeThrown(reason) };
}
