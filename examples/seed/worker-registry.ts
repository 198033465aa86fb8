/** The seed's "Worker Registry" section. */
import assert from "node:assert/strict";
import { InMemoryWorkerRegistry, Worker, WorkerStatus } from "fastagentic";

const worker = new Worker({ id: "gpu-worker", config: { tags: ["gpu"] } });
worker.handler("render", async () => "done");
await worker.start();

const registry = new InMemoryWorkerRegistry();

// Register worker
await registry.register(worker.info);

// Heartbeat
await registry.heartbeat(worker.id);

// Get workers
const workers = await registry.getWorkers({ status: WorkerStatus.IDLE, tags: ["gpu"] });
console.log(
  "idle gpu workers:",
  workers.map((w) => w.id),
);
assert.deepEqual(
  workers.map((w) => w.id),
  ["gpu-worker"],
);

// Unregister
await registry.unregister(worker.id);
assert.equal((await registry.getWorkers()).length, 0);
await worker.stop();
console.log("worker registry: ok");
