/** The seed's "Task Queue" section: a priority queue with retry support. */
import assert from "node:assert/strict";
import { TaskPriority, TaskQueue } from "fastagentic";

const queue = new TaskQueue({ maxQueueSize: 10_000 });

// Enqueue tasks with priority
const task = await queue.enqueue({
  taskType: "analyze",
  data: { document: "..." },
  priority: TaskPriority.HIGH,
  timeoutMs: 60_000,
  retries: 3,
  metadata: { userId: "user-123" },
});
assert.equal(task.status, "queued");

// Dequeue for processing
const next = await queue.dequeue({ workerId: "worker-1", timeoutMs: 5000 });
assert.equal(next?.id, task.id);

// Complete task
const result = await queue.complete(task.id, { analysis: "..." });
console.log("complete →", result.status, result.result);
assert.equal(result.status, "completed");

// Or fail task (will retry if retries remaining)
const other = await queue.enqueue({ taskType: "analyze", data: {}, retries: 3 });
await queue.dequeue({ workerId: "worker-1", timeoutMs: 5000 });
const failed = await queue.fail(other.id, "Processing failed");
console.log("fail →", failed.status, failed.error);
assert.equal(failed.status, "queued"); // back in the queue: it has retries left

// Cancel task
const cancelled = await queue.cancel(other.id);
console.log("cancel →", cancelled.status);
assert.equal(cancelled.status, "cancelled");

// Wait for task completion
const final = await queue.waitForTask(task.id, { timeoutMs: 30_000 });
assert.equal(final.status, "completed");
await queue.close();
console.log("task queue: ok");
