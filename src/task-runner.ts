/**
 * Runs one attempt of a handler: builds its context, enforces the timeout through an
 * AbortSignal, and turns whatever happens into an Outcome. Never throws.
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

export interface RunSpec {
  handler: TaskHandler;
  data: unknown;
  timeoutMs: number;
  context: Omit<TaskContext, "signal">;
  clock: Clock;
  /** Aborting it cancels the run (reason: TaskCancelledError or AbandonedRun). */
  controller: AbortController;
}

export async function runAttempt(spec: RunSpec): Promise<Outcome> {
  const { controller, clock } = spec;
  const signal = controller.signal;
  const timer = clock.setTimeout(
    () => controller.abort(new TaskTimeoutError(spec.context.taskId, spec.timeoutMs)),
    spec.timeoutMs,
  );
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<Outcome>((resolve) => {
    onAbort = () => resolve(outcomeOfAbort(signal.reason));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  const ctx: TaskContext = { ...spec.context, signal };
  const headers = spec.context.headers;
  const run = async (): Promise<Outcome> => {
    try {
      const invoke = () => spec.handler(spec.data, ctx);
      const result =
        headers["traceparent"] !== undefined
          ? await otelContext.with(propagation.extract(ROOT_CONTEXT, headers), invoke)
          : await invoke();
      return { kind: "completed", result };
    } catch (thrown) {
      if (signal.aborted) return outcomeOfAbort(signal.reason);
      return {
        kind: "failed",
        error: describeThrown(thrown),
        unrecoverable: thrown instanceof UnrecoverableError,
      };
    }
  };
  try {
    return await Promise.race([run(), aborted]);
  } finally {
    clock.clearTimeout(timer);
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}

function outcomeOfAbort(reason: unknown): Outcome {
  if (reason instanceof TaskTimeoutError) return { kind: "timeout", error: reason.message };
  if (reason instanceof TaskCancelledError) return { kind: "cancelled", error: reason.message };
  return { kind: "abandoned", error: describeThrown(reason) };
}
