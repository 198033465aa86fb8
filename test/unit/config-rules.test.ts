/**
 * Settings that contradict each other: a coordinator whose workerTimeoutMs cannot be met by its
 * own workers' heartbeats is refused; a remote worker that cannot meet it is warned about;
 * `maxWorkers: 0` is a pure client.
 */
import {
  ConfigError,
  Coordinator,
  InMemoryTransport,
  type Logger,
  SimulatedClock,
  silentLogger,
  Worker,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { heartbeatTimingProblem } from "../../src/config.js";

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { ...silentLogger, warn: (_obj, msg) => warnings.push(msg ?? ""), warnings };
}

describe("rules across settings", () => {
  it("refuses a workerTimeoutMs shorter than two heartbeats of its own workers, saying what to set", async () => {
    const c = new Coordinator({ config: { workerTimeoutMs: 2000 }, logger: silentLogger });
    stops.push(() => c.stop());
    c.handler("x", async () => 1);
    const error = await c.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(
      /config\.workerTimeoutMs \(2000\) is shorter than 2 heartbeat intervals \(workerConfig\.heartbeatIntervalMs 5000\).*Set config\.workerTimeoutMs ≥ 10000, or workerConfig\.heartbeatIntervalMs ≤ 1000/,
    );
    expect(c.state).toBe("idle");
  });

  it("keeps healthy local workers alive when the settings agree (the timeout spans two heartbeats)", async () => {
    const clock = new SimulatedClock();
    const c = new Coordinator({
      config: { minWorkers: 2, autoScale: false, workerTimeoutMs: 2000, healthCheckIntervalMs: 250 },
      workerConfig: { heartbeatIntervalMs: 1000 },
      transport: new InMemoryTransport({ clock }),
      clock,
      logger: silentLogger,
    });
    stops.push(() => c.stop());
    c.handler("x", async () => 1);
    const dead: string[] = [];
    c.on("worker.dead", (w) => dead.push(w.id));
    await c.start();
    await clock.advance(30_000);
    expect(dead).toEqual([]);
    expect(c.getStats().workers).toMatchObject({ workerCount: 2, restarts: 0 });
  });

  it("starts a pure client whatever its timeout, and warns about a remote worker that heartbeats too seldom", async () => {
    const transport = new InMemoryTransport();
    const worker = new Worker({ transport, config: { heartbeatIntervalMs: 5000 }, logger: silentLogger });
    worker.handler("x", async () => 42);
    stops.push(() => worker.stop());
    await worker.start();
    const logger = recordingLogger();
    const c = new Coordinator({
      config: { minWorkers: 0, workerTimeoutMs: 2000, autoScale: false },
      transport,
      logger,
    });
    stops.push(() => c.stop());
    await c.start(); // asks every worker to heartbeat now
    expect(await c.submit("x", {})).toBe(42);
    expect(logger.warnings.filter((w) => w.includes("cannot be kept alive"))).toHaveLength(1);
    expect(logger.warnings[0]).toMatch(
      /this coordinator's workerTimeoutMs \(2000\) is shorter than 2 heartbeat intervals \(the worker's heartbeatIntervalMs 5000\).*--heartbeat-ms/,
    );
  });

  it("accepts maxWorkers: 0 as a pure client (auto-scaling off), and refuses what contradicts it", async () => {
    const transport = new InMemoryTransport();
    const worker = new Worker({ transport, logger: silentLogger });
    worker.handler("x", async () => "remote");
    stops.push(() => worker.stop());
    await worker.start();
    const c = new Coordinator({ config: { minWorkers: 0, maxWorkers: 0 }, transport, logger: silentLogger });
    stops.push(() => c.stop());
    expect(c.config.autoScale).toBe(false);
    await c.start();
    expect(await c.submit("x", {})).toBe("remote");
    expect(c.getStats().workers.workerCount).toBe(0);

    expect(() => new Coordinator({ config: { minWorkers: 0, maxWorkers: 0, autoScale: true } })).toThrow(
      /autoScale is true but maxWorkers is 0/,
    );
    const withHandlers = new Coordinator({ config: { minWorkers: 0, maxWorkers: 0 }, logger: silentLogger });
    stops.push(() => withHandlers.stop());
    withHandlers.handler("x", async () => 1);
    await expect(withHandlers.start()).rejects.toThrow(/handlers are registered but maxWorkers is 0/);
  });

  it("states the heartbeat rule in one place", () => {
    expect(heartbeatTimingProblem(10_000, 5000)).toBeUndefined();
    expect(heartbeatTimingProblem(9999, 5000)).toMatch(/workerTimeoutMs \(9999\)/);
  });
});
