/**
 * Task lifecycle on the event bus: with a worker's `lifecycleEvents` set, every task outcome it
 * reports is also published as `task.completed | task.failed | task.cancelled | task.timeout`
 * with `{ taskId, taskType, status, result?, error?, durationMs, workerId }`, for services that
 * did not submit the task. "durable": stored and confirmed before the task is acknowledged (at
 * least once; the event id `task-<id>-<status>` de-duplicates a repeat); "fast": `durable: false`.
 * Off by default: it is one more broker write per task.
 */
import type { Transport } from "../../transports/transport.js";
import type { TaskEnvelope, TaskEvent } from "../codec.js";
import { describeThrown } from "../errors.js";
import { type EventRoute, eventPublisherFor } from "../event-publisher.js";
import type { Logger } from "../logger.js";
import { EventBus } from "./event-bus.js";

export interface TaskLifecycleEvent {
  taskId: string;
  taskType: string;
  status: "completed" | "failed" | "cancelled" | "timeout";
  result?: unknown;
  error?: string;
  durationMs?: number;
  workerId?: string;
}

const enabled = new WeakMap<Transport, EventBus>();

/** Publishes the outcomes reported over `transport` on its event bus (idempotent per transport). */
export function enableLifecycleEvents(transport: Transport, mode: "durable" | "fast", logger: Logger): void {
  if (enabled.has(transport) || typeof transport.eventLog !== "function") return;
  const bus = new EventBus({ transport, logger });
  enabled.set(transport, bus);
  const durable = mode === "durable";
  eventPublisherFor(transport).lifecycle = async (task: EventRoute, event: TaskEvent) => {
    const status = event.kind as TaskLifecycleEvent["status"];
    const data: TaskLifecycleEvent = {
      taskId: event.taskId,
      taskType: (task as Partial<TaskEnvelope>).type ?? "",
      status,
    };
    if (event.result !== undefined) data.result = event.result;
    if (event.error !== undefined) data.error = event.error;
    if (event.durationMs !== undefined) data.durationMs = event.durationMs;
    if (event.workerId !== undefined) data.workerId = event.workerId;
    try {
      await bus.publish(`task.${status}`, data, {
        id: `task-${event.taskId}-${status}`,
        durable,
        key: event.taskId,
      });
    } catch (error) {
      if (durable) throw error;
      logger.warn(
        { err: describeThrown(error), taskId: event.taskId },
        "could not publish a task lifecycle event",
      );
    }
  };
}
