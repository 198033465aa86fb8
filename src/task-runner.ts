/**
 * Runs one attempt of a handler: builds its context, enforces the timeout, turns whatever
 * happens into an Outcome. Never throws. The AbortController behind `ctx.signal` is created only
 * when the handler reads the signal, so the common path allocates little.
 */
import { context as otelContext, propagation, ROOT_CONTEXT } from "@opentelemetry/api";
import type { Clock } from "./clock.js";
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

/** Cancels a run: by timeout, cancellation (TaskCancelledError) or shutdown (AbandonedRun). */
export class RunControl {
  private controller?: AbortController;
  private reason?: unknown;
  /** @internal Set by runAttempt while the run is in flight. */
  onAbort?: (reason: unknown) => void;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason !== undefined) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  abort(reason: unknown): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.controller?.abort(reason);
    this.onAbort?.(reason);
  }

  /** @internal */
  get abortReason(): unknown {
    return this.reason;
  }
}

export type RunContext = Omit<TaskContext, "signal">;

class HandlerContext implements TaskContext {
  readonly taskId: string;
  readonly taskType: string;
  readonly attempt: number;
  readonly workerId: string;
  readonly metadata: Record<string, unknown>;
  readonly tags: readonly string[];
  readonly headers: Readonly<Record<string, string>>;
  readonly progress: () => Promise<void>;

  constructor(
    base: RunContext,
    private readonly control: RunControl,
  ) {
    this.taskId = base.taskId;
    this.taskType = base.taskType;
    this.attempt = base.attempt;
    this.workerId = base.workerId;
    this.metadata = base.metadata;
    this.tags = base.tags;
    this.headers = base.headers;
    this.progress = base.progress;
  }

  get signal(): AbortSignal {
    return this.control.signal;
  }
}

export interface RunSpec {
  handler: TaskHandler;
  data: unknown;
  timeoutMs: number;
  context: RunContext;
  clock: Clock;
  control: RunControl;
}

export function runAttempt(spec: RunSpec): Promise<Outcome> {
  const { control, clock } = spec;
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(timer);
      control.onAbort = undefined;
      resolve(outcome);
    };
    const fail = (thrown: unknown) =>
      finish(
        control.aborted
          ? outcomeOfAbort(control.abortReason)
          : {
              kind: "failed",
              error: describeThrown(thrown),
              unrecoverable: thrown instanceof UnrecoverableError,
            },
      );
    const timer = clock.setTimeout(
      () => control.abort(new TaskTimeoutError(spec.context.taskId, spec.timeoutMs)),
      spec.timeoutMs,
    );
    control.onAbort = (reason) => finish(outcomeOfAbort(reason));
    if (control.aborted) return finish(outcomeOfAbort(control.abortReason));
    const ctx = new HandlerContext(spec.context, control);
    const headers = spec.context.headers;
    try {
      const invoke = () => spec.handler(spec.data, ctx);
      const value =
        headers["traceparent"] !== undefined
          ? otelContext.with(propagation.extract(ROOT_CONTEXT, headers), invoke)
          : invoke();
      if (value !== null && typeof (value as PromiseLike<unknown>)?.then === "function") {
        (value as PromiseLike<unknown>).then((result) => finish({ kind: "completed", result }), fail);
      } else {
        finish({ kind: "completed", result: value });
      }
    } catch (thrown) {
      fail(thrown);
    }
  });
}

function outcomeOfAbort(reason: unknown): Outcome {
  if (reason instanceof TaskTimeoutError) return { kind: "timeout", error: reason.message };
  if (reason instanceof TaskCancelledError) return { kind: "cancelled", error: reason.message };
  return { kind: "abandoned", error: describeThrown(reason) };
}
