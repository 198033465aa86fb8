/** The seed's "Coordinator" section: high-level orchestration with auto-scaling. */
import assert from "node:assert/strict";
import { Coordinator, TaskPriority } from "fastagentic";

const coordinator = new Coordinator({
  config: {
    minWorkers: 2,
    maxWorkers: 20,
    scaleUpThreshold: 10, // Queue size to trigger scale up
    scaleDownThreshold: 2, // Queue size to trigger scale down
    healthCheckIntervalMs: 10_000,
    workerTimeoutMs: 30_000,
    autoScale: true,
  },
});

// Register handlers
coordinator.registerHandler("task_type", async (data: { n: number }) => ({ doubled: data.n * 2 }));

// Or use the decorator-style registrar
coordinator.handler("process")(async (data: { input: string }) => ({ result: data.input.toUpperCase() }));

// Start coordinator
await coordinator.start();

// Submit and wait
const result = await coordinator.submit("process", { input: "..." });
assert.deepEqual(result, { result: "..." });

// Submit async
const task = await coordinator.submitAsync(
  "process",
  { input: "abc" },
  {
    priority: TaskPriority.HIGH,
    timeoutMs: 60_000,
    retries: 2,
  },
);

// Wait for result
const done = await coordinator.waitFor(task.id);
assert.deepEqual(done.result, { result: "ABC" });

// Get task status
const t = await coordinator.getTask(task.id);
console.log(`Status: ${t?.status}`);
assert.equal(t?.status, "completed");

// Cancel task (already finished: cancelling reports its final state)
const c = await coordinator.cancelTask(task.id);
assert.equal(c.status, "completed");

// Manual scaling
await coordinator.scale(5);

// Get workers
const workers = await coordinator.getWorkers();
assert.equal(workers.length, 5);

// Get stats
const stats = coordinator.getStats();
console.log(`Running: ${stats.running}`);
console.log(`Queue size: ${stats.queue.queueSize}`);
console.log(`Worker count: ${stats.workers.workerCount}`);
assert.equal(stats.workers.workerCount, 5);
assert.equal(stats.queue.queueSize, 0);

// Stop coordinator
await coordinator.stop({ graceful: true });
console.log("coordinator: ok");
