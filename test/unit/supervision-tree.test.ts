/**
 * The supervision tree on a simulated clock: Coordinator → its pool's supervisor → WorkerPool →
 * Workers. Workers whose heartbeats stop are declared dead and replaced within the pool's
 * intensity; a pool past it escalates and is restarted within the coordinator's own intensity;
 * past that, the coordinator gives up, stops, and says so. A clean stop is never restarted.
 */
import {
  Coordinator,
  type EscalationError,
  InMemoryTransport,
  SimulatedClock,
  StateError,
  silentLogger,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { decodeWorkerEvent } from "../../src/codec.js";
import { Collector } from "../helpers/async.js";

const toStop: Coordinator[] = [];
afterEach(async () => {
  for (const c of toStop.splice(0)) await c.stop({ graceful: false });
});

function tree(maxRestarts: number) {
  const clock = new SimulatedClock();
  const transport = new InMemoryTransport({ clock });
  const coordinator = new Coordinator({
    clock,
    transport,
    logger: silentLogger,
    config: {
      minWorkers: 1,
      maxWorkers: 1,
      autoScale: false,
      healthCheckIntervalMs: 500,
      workerTimeoutMs: 2000,
      restartIntensity: { maxRestarts, periodMs: 600_000 },
    },
    workerConfig: { heartbeatIntervalMs: 500 },
  });
  toStop.push(coordinator);
  coordinator.handler("x", async () => 1);
  return { clock, transport, coordinator };
}

/** Every worker is heard once (its first heartbeat), then never again: each is declared dead. */
function silenceWorkersAfterTheirFirstBeat(transport: InMemoryTransport): void {
  const heard = new Set<string>();
  transport.dropPublishes((m) => {
    if (m.subject !== "ev.workers") return false;
    const id = decodeWorkerEvent(m.body).info.id;
    if (heard.has(id)) return true;
    heard.add(id);
    return false;
  });
}

describe("supervision tree", () => {
  it("restarts dead workers, then the pool, then escalates from the coordinator and stops it", async () => {
    const { clock, transport, coordinator } = tree(1);
    silenceWorkersAfterTheirFirstBeat(transport);
    const log: string[] = [];
    coordinator.on("worker.dead", (w) => log.push(`dead ${w.id}`));
    coordinator.on("pool.restarted", ({ restarts }) => log.push(`pool restarted (${restarts})`));
    const escalated = new Collector<EscalationError>();
    coordinator.on("escalated", (e) => {
      log.push("escalated");
      escalated.push(e);
    });
    await coordinator.start();
    const pool = coordinator.pool.id;
    for (let i = 0; i < 40 && escalated.items.length === 0; i++) await clock.advance(500);

    // w1 dies → replaced (the pool's one restart); w2 dies → the pool escalates and is restarted
    // (the coordinator's one restart) with a fresh window; w3 dies → replaced; w4 dies → the pool
    // escalates again → past the coordinator's intensity: it gives up.
    expect(log).toEqual([
      `dead ${pool}-w1`,
      `dead ${pool}-w2`,
      "pool restarted (1)",
      `dead ${pool}-w3`,
      `dead ${pool}-w4`,
      "escalated",
    ]);
    const [error] = await escalated.waitFor(1);
    expect(error!.message).toMatch(
      /^Coordinator gave up: its worker pool local-\S+ kept failing \(more than 1 restarts within 600000 ms/,
    );
    await clock.advance(100);
    expect(coordinator.state).toBe("stopped");
    expect(coordinator.getStats().workers).toMatchObject({ poolRestarts: 1, escalated: true });
    await expect(coordinator.submit("x", {})).rejects.toBeInstanceOf(StateError);
  });

  it("does not restart a pool that stopped cleanly (a drain), and does not escalate", async () => {
    const { clock, coordinator } = tree(0); // any restart at all would escalate at once
    const escalated = new Collector<EscalationError>();
    coordinator.on("escalated", escalated.push);
    await coordinator.start();
    const stopped = new Promise<void>((resolve) => coordinator.pool.once("stopped", resolve));
    await coordinator.drainWorkers();
    await stopped;
    await clock.advance(10_000);
    expect(escalated.items).toEqual([]);
    expect(coordinator.state).toBe("running");
    expect(coordinator.getStats().workers).toMatchObject({ workerCount: 0, poolRestarts: 0 });
  });
});
