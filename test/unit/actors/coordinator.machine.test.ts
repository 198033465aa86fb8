import { describe, expect, it } from "vitest";
import { createActor, SimulatedClock } from "xstate";
import {
  type CoordinatorInput,
  coordinatorMachine,
  decideScale,
} from "../../../actors/coordinator.machine.js";

const policy = {
  minWorkers: 2,
  maxWorkers: 10,
  scaleUpThreshold: 10,
  scaleDownThreshold: 2,
  scaleDownDelayMs: 5000,
};

describe("decideScale (hysteresis)", () => {
  it("scales up at once, in proportion to depth, capped at maxWorkers", () => {
    expect(decideScale(policy, undefined, { depth: 11, workers: 2, now: 0 })).toEqual({ target: 3 });
    expect(decideScale(policy, undefined, { depth: 55, workers: 2, now: 0 })).toEqual({ target: 6 });
    expect(decideScale(policy, undefined, { depth: 10_000, workers: 2, now: 0 })).toEqual({ target: 10 });
    expect(decideScale(policy, undefined, { depth: 10_000, workers: 10, now: 0 })).toEqual({});
  });

  it("holds between the thresholds, and forgets a low period", () => {
    expect(decideScale(policy, undefined, { depth: 2, workers: 5, now: 0 })).toEqual({});
    expect(decideScale(policy, 100, { depth: 10, workers: 5, now: 9999 })).toEqual({});
  });

  it("scales down one worker at a time, only after depth stayed low for scaleDownDelayMs", () => {
    expect(decideScale(policy, undefined, { depth: 1, workers: 5, now: 1000 })).toEqual({ lowSince: 1000 });
    expect(decideScale(policy, 1000, { depth: 0, workers: 5, now: 5999 })).toEqual({ lowSince: 1000 });
    expect(decideScale(policy, 1000, { depth: 0, workers: 5, now: 6000 })).toEqual({
      target: 4,
      lowSince: 6000,
    });
    expect(decideScale(policy, 6000, { depth: 0, workers: 4, now: 8000 })).toEqual({ lowSince: 6000 });
  });

  it("never goes under minWorkers, and restores the bounds when outside them", () => {
    expect(decideScale(policy, 0, { depth: 0, workers: 2, now: 1e9 })).toEqual({});
    expect(decideScale(policy, undefined, { depth: 0, workers: 1, now: 0 })).toEqual({ target: 2 });
    expect(decideScale(policy, undefined, { depth: 0, workers: 12, now: 0 })).toEqual({ target: 10 });
  });
});

function harness(overrides: Partial<CoordinatorInput> = {}) {
  const clock = new SimulatedClock();
  const calls: string[] = [];
  const input: CoordinatorInput = {
    ...policy,
    autoScale: true,
    healthCheckIntervalMs: 1000,
    autoScaleIntervalMs: 500,
    ...overrides,
  };
  const actor = createActor(
    coordinatorMachine.provide({
      actions: {
        checkHealth: () => calls.push("health"),
        sampleLoad: () => calls.push("sample"),
        scaleTo: (_, p) => calls.push(`scale:${p.workers}`),
        shutdown: (_, p) => calls.push(`shutdown:${p.graceful}`),
      },
    }),
    { input, clock },
  ).start();
  return { clock, calls, actor };
}

describe("coordinator machine", () => {
  it("runs health checks and load samples on their intervals once running, not before", () => {
    const h = harness();
    h.clock.increment(5000);
    expect(h.calls).toEqual([]);
    h.actor.send({ type: "START" });
    h.actor.send({ type: "STARTED" });
    for (let i = 0; i < 4; i++) h.clock.increment(500);
    expect(h.calls.filter((c) => c === "sample")).toHaveLength(4);
    expect(h.calls.filter((c) => c === "health")).toHaveLength(2);
  });

  it("turns samples into scale decisions, with a scale-down delay", () => {
    const h = harness();
    h.actor.send({ type: "START" });
    h.actor.send({ type: "STARTED" });
    h.actor.send({ type: "SCALE_SAMPLE", depth: 35, workers: 2, now: 0 });
    h.actor.send({ type: "SCALE_SAMPLE", depth: 5, workers: 4, now: 100 });
    h.actor.send({ type: "SCALE_SAMPLE", depth: 0, workers: 4, now: 200 });
    h.actor.send({ type: "SCALE_SAMPLE", depth: 0, workers: 4, now: 5199 });
    h.actor.send({ type: "SCALE_SAMPLE", depth: 0, workers: 4, now: 5200 });
    expect(h.calls).toEqual(["scale:4", "scale:3"]);
  });

  it("with autoScale off: no sampling, samples ignored, health checks still run", () => {
    const h = harness({ autoScale: false });
    h.actor.send({ type: "START" });
    h.actor.send({ type: "STARTED" });
    h.actor.send({ type: "SCALE_SAMPLE", depth: 1000, workers: 2, now: 0 });
    h.clock.increment(1000);
    expect(h.calls).toEqual(["health"]);
  });

  it("stops: shutdown with the graceful flag, then stopped; timers end", () => {
    const h = harness();
    h.actor.send({ type: "START" });
    h.actor.send({ type: "STARTED" });
    h.actor.send({ type: "STOP", graceful: true });
    expect(h.calls).toEqual(["shutdown:true"]);
    expect(h.actor.getSnapshot().value).toBe("stopping");
    h.actor.send({ type: "STOPPED" });
    expect(h.actor.getSnapshot().status).toBe("done");
    h.clock.increment(10_000);
    expect(h.calls).toEqual(["shutdown:true"]);
  });

  it("returns to idle when starting fails, keeping the error", () => {
    const h = harness();
    h.actor.send({ type: "START" });
    h.actor.send({ type: "START_FAILED", error: "no broker" });
    expect(h.actor.getSnapshot().value).toBe("idle");
    expect(h.actor.getSnapshot().context.error).toBe("no broker");
    h.actor.send({ type: "STOP", graceful: true });
    expect(h.calls).toEqual([]);
  });
});
