/**
 * Memory per queued task on the in-memory transport: a Coordinator with a handler but no worker
 * running, `tasks` submitted; heap (and off-heap ArrayBuffer) growth per task after a full GC,
 * less the payload. Runs in a process started with --expose-gc (bench/harness/gc-child-runner.ts).
 */
import { Coordinator, silentLogger } from "fastagentic";
import type { QueuedMemoryResult } from "../report/bench-results.js";
import { settledMemory } from "./gc-settle.js";

const BATCH = 1000;

export async function measureQueuedMemory(input: { tasks: number }): Promise<QueuedMemoryResult> {
  const tasks = input.tasks;
  const coordinator = new Coordinator({
    config: { minWorkers: 0, maxWorkers: 1, autoScale: false, maxQueueSize: tasks * 2 + BATCH },
    logger: silentLogger,
  });
  coordinator.handler("double", (data: { x: number }) => data.x * 2);
  await coordinator.start();
  const submitBatch = (from: number) =>
    Promise.all(Array.from({ length: BATCH }, (_, i) => coordinator.submitAsync("double", { x: from + i })));
  await submitBatch(-BATCH); // warm: code paths, maps and the queue's first allocations
  const before = settledMemory();
  let payloadBytes = 0;
  for (let i = 0; i < tasks; i += BATCH) {
    await submitBatch(i);
    for (let j = i; j < i + BATCH; j++) payloadBytes += JSON.stringify({ x: j }).length;
  }
  const after = settledMemory();
  const queued = coordinator.getStats().queued;
  if (queued !== tasks + BATCH) throw new Error(`expected ${tasks + BATCH} queued tasks, found ${queued}`);
  const heap = (after.heapUsed - before.heapUsed) / tasks;
  const buffers = (after.arrayBuffers - before.arrayBuffers) / tasks;
  const payload = payloadBytes / tasks;
  await coordinator.stop({ graceful: false });
  return {
    tasks,
    heapBytesPerTask: heap,
    arrayBufferBytesPerTask: buffers,
    payloadBytes: payload,
    netBytesPerTask: heap + buffers - payload,
  };
}
