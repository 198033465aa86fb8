/** The seed's "Worker Pools" section. */
import assert from "node:assert/strict";
import { WorkerPool } from "fastagentic";

const pool = new WorkerPool({ minWorkers: 2, maxWorkers: 10, config: { maxConcurrentTasks: 4 } });

// Register handlers for all workers
pool.registerHandler("process", async (data: { data: string }) => ({ processed: data.data }));
pool.registerHandler("analyze", async (data: { data: string }) => ({ length: data.data.length }));

// Start pool (creates minWorkers)
await pool.start();
assert.equal(pool.getStats().workerCount, 2);

// Submit task to pool
const result = await pool.submit("process", { data: "..." });
console.log("process →", result);
assert.deepEqual(result, { processed: "..." });

// Scale pool
await pool.scale(5); // Scale to 5 workers

// Get stats
const stats = pool.getStats();
console.log(`Workers: ${stats.workerCount}`);
console.log(`Current tasks: ${stats.currentTasks}`);
console.log(`Completed: ${stats.totalCompleted}`);
assert.equal(stats.workerCount, 5);
assert.equal(stats.totalCompleted, 1);

// Stop pool
await pool.stop({ graceful: true });
console.log("worker pool: ok");
