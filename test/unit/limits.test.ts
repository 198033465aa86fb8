/**
 * Every duration and count has an upper bound, checked where it enters (options objects, submit,
 * waits, HTTP bodies, transport options) with a ConfigError naming the key; NaN and Infinity are
 * named as such. And a timer longer than Node's limit waits as long as it says, not 1 ms.
 */
import {
  App,
  ConfigError,
  Coordinator,
  silentLogger,
  TaskQueue,
  transportFromUrl,
  Worker,
  WorkerPool,
} from "fastagentic";
import { afterEach, describe, expect, it, vi } from "vitest";
import { systemClock } from "../../src/clock.js";
import { MAX_DURATION_MS } from "../../src/limits.js";
import { AmqpTransport } from "../../transports/amqp/index.js";
import { NatsTransport } from "../../transports/nats/index.js";

const TOO_LONG = [2 ** 31, 2 ** 40, 1e300, Number.POSITIVE_INFINITY, Number.NaN];

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

async function rejection(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe("durations are bounded, named, and NaN is NaN", () => {
  const coordinatorKeys = [
    "healthCheckIntervalMs",
    "workerTimeoutMs",
    "autoScaleIntervalMs",
    "scaleDownDelayMs",
    "defaultTimeoutMs",
  ];
  for (const key of coordinatorKeys) {
    it(`CoordinatorConfig.${key}`, () => {
      for (const value of TOO_LONG) {
        const e = configError(() => new Coordinator({ config: { [key]: value } }));
        expect(e.message).toContain(`CoordinatorConfig.${key} must be`);
        expect(e.message).toContain(`got ${String(value)}.`);
        expect(e.message).toContain(String(MAX_DURATION_MS));
      }
    });
  }

  for (const key of ["heartbeatIntervalMs", "taskTimeoutMs", "gracefulShutdownTimeoutMs", "stallTimeoutMs"]) {
    it(`WorkerConfig.${key}`, () => {
      for (const value of TOO_LONG) {
        const e = configError(() => new Worker({ config: { [key]: value } }));
        expect(e.message).toContain(`WorkerConfig.${key} must be`);
        expect(e.message).toContain(`got ${String(value)}.`);
      }
    });
  }

  it("retryBackoff and restartIntensity, in a coordinator, a pool and a queue", () => {
    expect(
      configError(() => new Coordinator({ config: { retryBackoff: { maxMs: 2 ** 31 } } })).message,
    ).toContain("CoordinatorConfig.retryBackoff.maxMs");
    expect(
      configError(() => new WorkerPool({ restartIntensity: { periodMs: Number.POSITIVE_INFINITY } })).message,
    ).toContain("got Infinity");
    expect(configError(() => new TaskQueue({ retryBackoff: { multiplier: Number.NaN } })).message).toContain(
      "TaskQueueOptions.retryBackoff.multiplier must be a number from 1 to 1000; got NaN.",
    );
  });

  it("a task's timeoutMs and retries, a wait's timeoutMs, at submit", async () => {
    const coordinator = new Coordinator({ config: { minWorkers: 1 }, logger: silentLogger });
    coordinator.handler("echo", async (d) => d);
    await coordinator.start();
    try {
      for (const timeoutMs of TOO_LONG) {
        const e = await rejection(coordinator.submitAsync("echo", {}, { timeoutMs }));
        expect(e.message).toContain(
          `timeoutMs must be a whole number of milliseconds from 1 to ${MAX_DURATION_MS}`,
        );
        expect(e.message).toContain(`got ${String(timeoutMs)}.`);
      }
      expect((await rejection(coordinator.submit("echo", {}, { retries: 1e12 }))).message).toContain(
        "retries must be an integer from 0 to 1000; got 1000000000000.",
      );
      expect(
        (await rejection(coordinator.submit("echo", {}, { waitTimeoutMs: 2 ** 31 } as object))).message,
      ).toContain("submit() waitTimeoutMs");
      const task = await coordinator.submitAsync("echo", {});
      expect((await rejection(coordinator.waitFor(task.id, { timeoutMs: 2 ** 31 }))).message).toContain(
        "The wait's timeoutMs must be",
      );
      expect((await coordinator.waitFor(task.id, { timeoutMs: MAX_DURATION_MS })).status).toBe("completed");
      await expect(coordinator.scale(Number.NaN)).rejects.toThrow(
        /scale\(\) workers must be an integer.*got NaN/,
      );
    } finally {
      await coordinator.stop();
    }
  });

  it("counts: workers, concurrency, queue size, retries", () => {
    expect(configError(() => new Coordinator({ config: { maxWorkers: 1e9 } })).message).toContain(
      "maxWorkers must be an integer from 0 to 10000",
    );
    expect(configError(() => new Worker({ config: { maxConcurrentTasks: 2 ** 40 } })).message).toContain(
      "maxConcurrentTasks",
    );
    expect(configError(() => new TaskQueue({ maxQueueSize: Number.POSITIVE_INFINITY })).message).toContain(
      "TaskQueueOptions.maxQueueSize must be an integer from 1 to 1000000000; got Infinity.",
    );
    expect(configError(() => new Coordinator({ config: { defaultRetries: 1e12 } })).message).toContain(
      "defaultRetries",
    );
  });

  it("over HTTP: 400 naming the field", async () => {
    const coordinator = new Coordinator({ config: { minWorkers: 1 }, logger: silentLogger });
    coordinator.handler("echo", async (d) => d);
    const app = new App({ appLogger: silentLogger });
    app.mountCoordinator(coordinator, { maxWaitMs: 1000 });
    await coordinator.start();
    try {
      await app.server.ready();
      for (const [field, value] of [
        ["timeoutMs", 2 ** 31],
        ["timeoutMs", 1e300],
        ["retries", 1e12],
        ["waitTimeoutMs", 2 ** 40],
      ] as const) {
        const r = await app.server.inject({
          method: "POST",
          url: "/tasks",
          payload: { type: "echo", [field]: value },
        });
        expect(r.statusCode, `${field} ${value}`).toBe(400);
        expect(r.json().error.message).toContain(field);
      }
      expect(() => new App().mountCoordinator(coordinator, { maxWaitMs: 2 ** 31 })).toThrow(
        /CoordinatorRoutesOptions.maxWaitMs must be/,
      );
    } finally {
      await app.close();
      await coordinator.stop();
    }
  });

  it("transport options", () => {
    expect(() => new NatsTransport({ ackWaitMs: 2 ** 31 })).toThrow(
      /"ackWaitMs" must be an integer from 100 to 2147483647/,
    );
    expect(() => new AmqpTransport({ publishTimeoutMs: Number.POSITIVE_INFINITY })).toThrow(
      /publishTimeoutMs must be a duration in milliseconds from 1 to 2147483647; got Infinity/,
    );
    expect(() => new AmqpTransport({ heartbeatSeconds: 1e9 })).toThrow(
      /heartbeatSeconds must be an integer from 0 to 65535/,
    );
    expect(transportFromUrl("nats://127.0.0.1:4222").kind).toBe("nats");
  });
});

describe("systemClock", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("waits as long as it is told past Node's 2^31 − 1 ms timer limit, and can be cleared", () => {
    vi.useFakeTimers();
    const fired: string[] = [];
    systemClock.setTimeout(() => fired.push("long"), 3 * MAX_DURATION_MS + 5);
    const cleared = systemClock.setTimeout(() => fired.push("cleared"), MAX_DURATION_MS + 10);
    vi.advanceTimersByTime(MAX_DURATION_MS + 5);
    systemClock.clearTimeout(cleared);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(2 * MAX_DURATION_MS - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["long"]);
  });
});
