import { ConfigError, Coordinator, Worker, WorkerPool } from "fastagentic";
import { describe, expect, it } from "vitest";
import { backoffDelay, resolveCoordinatorConfig, resolveWorkerConfig } from "../../src/config.js";

describe("configuration", () => {
  it("fills defaults", () => {
    const c = resolveCoordinatorConfig({ minWorkers: 2 });
    expect(c).toMatchObject({
      minWorkers: 2,
      maxWorkers: 10,
      autoScale: true,
      scaleUpThreshold: 10,
      scaleDownThreshold: 2,
    });
    expect(resolveWorkerConfig(undefined).maxConcurrentTasks).toBe(4);
  });

  it("rejects minWorkers > maxWorkers, saying what to do", () => {
    expect(() => new Coordinator({ config: { minWorkers: 5, maxWorkers: 2 } })).toThrow(
      /minWorkers \(5\) is greater than maxWorkers \(2\)/,
    );
    expect(() => new WorkerPool({ minWorkers: 3, maxWorkers: 1 })).toThrow(ConfigError);
  });

  it("rejects negative or non-numeric durations and counts", () => {
    expect(() => resolveCoordinatorConfig({ healthCheckIntervalMs: -1 })).toThrow(
      /healthCheckIntervalMs must be a duration/,
    );
    expect(() => resolveCoordinatorConfig({ workerTimeoutMs: "30s" as unknown as number })).toThrow(
      ConfigError,
    );
    expect(() => resolveWorkerConfig({ maxConcurrentTasks: 0 })).toThrow(
      /maxConcurrentTasks must be an integer from 1 to 10000; got 0/,
    );
    expect(() => resolveWorkerConfig({ gracefulShutdownTimeoutMs: Number.NaN })).toThrow(ConfigError);
  });

  it("rejects unknown keys, suggesting the camelCase / Ms name", () => {
    expect(() => resolveCoordinatorConfig({ min_workers: 2 } as never)).toThrow(
      /Unknown option "min_workers".*Did you mean "minWorkers"/,
    );
    expect(() => resolveCoordinatorConfig({ worker_timeout: 2 } as never)).toThrow(
      /Did you mean "workerTimeoutMs"/,
    );
    expect(() => resolveWorkerConfig({ heartbeatInterval: 5 } as never)).toThrow(
      /Did you mean "heartbeatIntervalMs"/,
    );
    expect(() => new Coordinator({ conifg: {} } as never)).toThrow(
      /Unknown option "conifg" in CoordinatorOptions/,
    );
  });

  it("requires a gap between the scaling thresholds", () => {
    expect(() => resolveCoordinatorConfig({ scaleUpThreshold: 5, scaleDownThreshold: 5 })).toThrow(
      /must be below scaleUpThreshold/,
    );
  });

  it("validates tags as names", () => {
    expect(() => new Worker({ config: { tags: ["gpu", "bad tag"] } })).toThrow(ConfigError);
    expect(() => new Worker({ config: { tags: ["a.b"] } })).toThrow(/Invalid tag "a.b"/);
  });

  it("computes exponential back-off with a cap and bounded jitter", () => {
    const b = { initialMs: 100, multiplier: 2, maxMs: 1000, jitter: 0 };
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(b, a))).toEqual([100, 200, 400, 800, 1000]);
    const jittered = backoffDelay({ ...b, jitter: 0.5 }, 1, () => 1);
    expect(jittered).toBe(50);
  });
});
