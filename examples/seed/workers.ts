/** The seed's "Workers" section: an individual task executor. */
import assert from "node:assert/strict";
import { Worker, WorkerStatus } from "fastagentic";

// Create worker with config
const worker = new Worker({
  id: "worker-1",
  config: { maxConcurrentTasks: 4, heartbeatIntervalMs: 5000, taskTimeoutMs: 300_000, tags: ["gpu", "fast"] },
});

// Register handlers
worker.handler("compute", async (data: { x: number }) => ({ result: data.x * 2 }));

// Start worker
await worker.start();

// Execute task directly
const result = await worker.executeTask({ taskId: "task-123", taskType: "compute", data: { x: 21 } });
console.log("compute →", result);
assert.deepEqual(result, { result: 42 });

// Worker info
const info = worker.info;
console.log(`ID: ${info.id}`);
console.log(`Status: ${info.status}`);
console.log(`Current tasks: ${info.currentTasks}`);
console.log(`Total completed: ${info.totalCompleted}`);
console.log(`Total failed: ${info.totalFailed}`);
console.log(`Uptime: ${info.uptimeSeconds}s`);
console.log(`Available: ${info.isAvailable}`);
assert.equal(info.id, "worker-1");
assert.equal(info.status, WorkerStatus.IDLE);
assert.equal(info.totalCompleted, 1);
assert.equal(info.isAvailable, true);

// Stop worker
await worker.stop({ graceful: true });
assert.equal(worker.info.status, WorkerStatus.STOPPED);
console.log("workers: ok");
