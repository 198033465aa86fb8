/**
 * What happens to a delivery once an attempt has an outcome, decided by the task machine and
 * done in the order that makes at-least-once hold: publish the outcome event first, then settle
 * the delivery (ack, nack with back-off, or dead-letter). Shared by Worker and TaskQueue.
 */
import { canRetry, nextTaskState } from "../actors/task.machine.js";
import type { Delivery, Transport } from "../transports/transport.js";
import type { TaskEnvelope, TaskEvent } from "./codec.js";
import { backoffDelay, type RetryBackoff } from "./config.js";
import { type EventRoute, eventPublisherFor, type TaskEventInput } from "./event-publisher.js";
import type { Outcome } from "./task-runner.js";

export interface OutcomeTarget {
  transport: Transport;
  backoff: RetryBackoff;
  workerId: string;
  now(): number;
  /**
   * Told of each outcome (and retry) once it was reported, before its delivery is settled: the
   * worker writes it to the record of finished tasks (transports/finished-record.ts).
   */
  recorded?(sent: TaskEvent): void;
}

/** Queues a task event for the task's client without waiting: `done` settles when it is published. */
export function queueTaskEvent(
  transport: Transport,
  task: EventRoute,
  event: TaskEventInput,
): { sent: TaskEvent; done: Promise<void> } {
  return eventPublisherFor(transport).queue(task, event);
}

/** Publishes a task event for the task's client (batched); resolves with the event as sent. */
export function publishTaskEvent(
  transport: Transport,
  task: EventRoute,
  event: TaskEventInput,
): Promise<TaskEvent> {
  return eventPublisherFor(transport).publish(task, event);
}

/**
 * Reports an outcome and settles the delivery. Returns the event reported ("retrying" when
 * another attempt follows), or undefined for an abandoned attempt (left for redelivery).
 */
export async function settleOutcome(
  target: OutcomeTarget,
  delivery: Delivery,
  task: TaskEnvelope,
  attempt: number,
  outcome: Outcome,
  durationMs: number,
): Promise<TaskEvent | undefined> {
  if (outcome.kind === "abandoned") return undefined; // left unsettled: the broker redelivers it
  const at = target.now();
  const workerId = target.workerId;
  const taskId = task.id;
  if (outcome.kind === "completed") {
    const event = {
      v: 1,
      kind: "completed",
      taskId,
      at,
      attempt,
      workerId,
      durationMs,
      result: outcome.result,
    } as const;
    const { sent, done } = queueTaskEvent(target.transport, task, event);
    await done;
    target.recorded?.(sent);
    if (sent.kind === "completed") await delivery.ack();
    else await delivery.deadLetter(sent.error ?? "result cannot be sent");
    return sent;
  }
  const error = outcome.error;
  if (outcome.kind === "cancelled") {
    const event = { v: 1, kind: "cancelled", taskId, at, attempt, workerId, durationMs, error } as const;
    const { sent, done } = queueTaskEvent(target.transport, task, event);
    await done;
    target.recorded?.(sent);
    await delivery.ack();
    return sent;
  }
  const machineEvent = outcome.kind === "timeout" ? "TIME_OUT" : "FAIL";
  const unrecoverable = outcome.kind === "failed" && outcome.unrecoverable === true;
  const retry = canRetry(attempt, task.retries, unrecoverable);
  if (nextTaskState("running", machineEvent, retry) === "queued") {
    const delayMs = backoffDelay(target.backoff, attempt);
    const event = {
      v: 1,
      kind: "retrying",
      taskId,
      at,
      attempt,
      workerId,
      durationMs,
      error,
      delayMs,
    } as const;
    const { sent, done } = queueTaskEvent(target.transport, task, event);
    await done;
    target.recorded?.(sent);
    await delivery.nack({ delayMs });
    return sent;
  }
  const kind = outcome.kind === "timeout" ? "timeout" : "failed";
  const sent = await publishTaskEvent(target.transport, task, {
    v: 1,
    kind,
    taskId,
    at,
    attempt,
    workerId,
    durationMs,
    error,
  });
  target.recorded?.(sent);
  await delivery.deadLetter(error);
  return sent;
}

/** Redeliveries without an outcome (the worker died mid-task) allowed beyond a task's attempts. */
export const DEFAULT_MAX_REDELIVERIES = 3;

/**
 * A task delivered more often than its attempts plus the redeliveries allowed for crashes is a
 * poison task (it kills its workers): returns the error to dead-letter it with, else undefined.
 */
export function poisonError(attempt: number, retries: number, maxRedeliveries: number): string | undefined {
  const limit = retries + 1 + maxRedeliveries;
  if (attempt <= limit) return undefined;
  return (
    `Delivered ${attempt} times, over its limit of ${limit} (${retries + 1} attempt(s) + ${maxRedeliveries} ` +
    "redeliveries after a worker stopped or crashed during it); dead-lettered as a poison task."
  );
}
