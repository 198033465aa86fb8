/**
 * fastagentic on the in-memory transport: one process (the transport cannot cross processes), a
 * Coordinator with one local worker taking `concurrency` tasks at once.
 */
import { Coordinator, silentLogger } from "fastagentic";
import type { BenchPath } from "./bench-path.js";

export const fastagenticMemoryPath: BenchPath = {
  id: "fa-memory",
  label: "fastagentic in memory (one process)",
  kind: "fastagentic",
  inProcess: true,

  async probe() {},

  async worker() {
    throw new Error("the in-memory transport runs its workers in the producer's process");
  },

  async client(spec) {
    const coordinator = new Coordinator({
      config: { minWorkers: 1, maxWorkers: 1, autoScale: false, maxQueueSize: 1_000_000 },
      workerConfig: { maxConcurrentTasks: spec.concurrency },
      logger: silentLogger,
    });
    coordinator.handler("double", (data: { x: number }) => data.x * 2);
    await coordinator.start();
    return {
      call: (x) => coordinator.submit("double", { x }) as Promise<number>,
      close: () => coordinator.stop({ graceful: false }),
    };
  },
};
