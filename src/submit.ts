import { validateKeys } from "./config.js";
import { ConfigError, TaskCancelledError, TaskFailedError, TaskTimeoutError } from "./errors.js";
import { checked, durationIn, showValue } from "./limits.js";
import { SUBMIT_KEYS, type TaskQueue } from "./task-queue.js";
import type { SubmitOptions, Task, TaskResult } from "./types.js";

const NO_WAIT_OPTIONS = Object.freeze({});
const WAIT_MS = durationIn(0);

/**
 * Enqueues a task and resolves with its handler's result, or rejects with the typed outcome. Not
 * `async`, like the submit() methods that return it: on the hot path, one promise less per task.
 */
export function submitAndWait(
  queue: TaskQueue,
  taskType: string,
  data: unknown,
  options: SubmitOptions & { waitTimeoutMs?: number },
): Promise<unknown> {
  try {
    if (typeof options !== "object" || options === null) {
      throw new ConfigError(`submit() options must be an object, got ${showValue(options)}.`);
    }
    validateKeys("submit() options", options, SUBMIT_KEYS);
    const waitTimeoutMs = options.waitTimeoutMs;
    if (waitTimeoutMs !== undefined) checked("submit() waitTimeoutMs", waitTimeoutMs, WAIT_MS);
    return queue
      .submitTask(
        taskType,
        data,
        options,
        waitTimeoutMs === undefined ? NO_WAIT_OPTIONS : { timeoutMs: waitTimeoutMs },
      )
      .then(unwrapSubmitted);
  } catch (error) {
    return Promise.reject(error);
  }
}

const unwrapSubmitted = (s: { task: Task; result: TaskResult }): unknown => unwrapResult(s.result, s.task);

/** The handler's result of a finished task, or the error that stands for its outcome. */
export function unwrapResult(result: TaskResult, task: Pick<Task, "id" | "timeoutMs" | "retries">): unknown {
  switch (result.status) {
    case "completed":
      return result.result;
    case "timeout":
      throw new TaskTimeoutError(task.id, task.timeoutMs);
    case "cancelled":
      throw new TaskCancelledError(task.id);
    default:
      throw new TaskFailedError(task.id, result.error ?? "unknown error", task.retries + 1);
  }
}
