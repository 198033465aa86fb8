import { describe, expect, it } from "vitest";
import { createActor, SimulatedClock } from "xstate";
import { type WorkerMachineEvent, workerMachine, workerStatusOf } from "../../../actors/worker.machine.js";

function harness(heartbeatIntervalMs = 1000) {
  const clock = new SimulatedClock();
  const calls: string[] = [];
  const actor = createActor(
    workerMachine.provide({
      actions: {
        sendHeartbeat: () => calls.push("heartbeat"),
        announceDraining: () => calls.push("draining"),
        reportFailure: (_, params) => calls.push(`failure:${params.error}`),
      },
    }),
    { input: { heartbeatIntervalMs }, clock },
  ).start();
  const send = (e: WorkerMachineEvent) => actor.send(e);
  const status = () => workerStatusOf(actor.getSnapshot());
  return { clock, calls, actor, send, status };
}

describe("worker machine", () => {
  it("starts stopped, runs idle after STARTED, and heartbeats on entry and every interval", () => {
    const h = harness(1000);
    expect(h.status()).toBe("stopped");
    h.send({ type: "START" });
    expect(h.status()).toBe("idle");
    expect(h.calls).toEqual([]);
    h.send({ type: "STARTED" });
    expect(h.calls).toEqual(["heartbeat"]);
    h.clock.increment(999);
    expect(h.calls).toHaveLength(1);
    h.clock.increment(1);
    expect(h.calls).toHaveLength(2);
    for (let i = 0; i < 3; i++) h.clock.increment(1000); // XState's clock fires one due round per increment
    expect(h.calls).toHaveLength(5);
  });

  it("is busy while it has tasks and idle when the count returns to zero", () => {
    const h = harness();
    h.send({ type: "START" });
    h.send({ type: "STARTED" });
    h.send({ type: "TASKS_CHANGED", currentTasks: 1 });
    expect(h.status()).toBe("busy");
    h.send({ type: "TASKS_CHANGED", currentTasks: 3 });
    expect(h.status()).toBe("busy");
    expect(h.actor.getSnapshot().context.currentTasks).toBe(3);
    h.send({ type: "TASKS_CHANGED", currentTasks: 0 });
    expect(h.status()).toBe("idle");
  });

  it("drains: announces it once, keeps heartbeating, then stops and goes quiet", () => {
    const h = harness(1000);
    h.send({ type: "START" });
    h.send({ type: "STARTED" });
    h.send({ type: "TASKS_CHANGED", currentTasks: 1 });
    h.send({ type: "DRAIN" });
    h.send({ type: "DRAIN" });
    expect(h.status()).toBe("draining");
    expect(h.calls.filter((c) => c === "draining")).toHaveLength(1);
    h.clock.increment(1000);
    expect(h.calls.filter((c) => c === "heartbeat")).toHaveLength(2);
    h.send({ type: "STOPPED" }); // not before STOP: the runtime has not shut down yet
    expect(h.status()).toBe("draining");
    h.send({ type: "STOP" });
    h.send({ type: "STOPPED" });
    expect(h.status()).toBe("stopped");
    expect(h.actor.getSnapshot().status).toBe("done");
    h.clock.increment(10_000);
    expect(h.calls.filter((c) => c === "heartbeat")).toHaveLength(2);
  });

  it("goes to error on FAIL, reports it, and stops heartbeating", () => {
    const h = harness(1000);
    h.send({ type: "START" });
    h.send({ type: "STARTED" });
    h.send({ type: "FAIL", error: "consumer died" });
    expect(h.status()).toBe("error");
    expect(h.calls).toContain("failure:consumer died");
    expect(h.actor.getSnapshot().context.error).toBe("consumer died");
    h.clock.increment(5000);
    expect(h.calls.filter((c) => c === "heartbeat")).toHaveLength(1);
    h.send({ type: "STOPPED" });
    expect(h.status()).toBe("error"); // final: a failed worker is replaced, never revived
    expect(h.actor.getSnapshot().status).toBe("done");
  });

  it("stops in two steps: STOP (no new work, no heartbeats), then STOPPED; a FAIL meanwhile is reported", () => {
    const h = harness(1000);
    h.send({ type: "START" });
    h.send({ type: "STARTED" });
    h.send({ type: "STOP" });
    expect(h.actor.getSnapshot().value).toBe("stopping");
    expect(h.status()).toBe("draining");
    h.clock.increment(5000);
    expect(h.calls).toEqual(["heartbeat"]);
    h.send({ type: "START" }); // a stopping worker cannot start again
    expect(h.actor.getSnapshot().value).toBe("stopping");
    h.send({ type: "STOPPED" });
    expect(h.status()).toBe("stopped");

    const failing = harness(1000);
    failing.send({ type: "START" });
    failing.send({ type: "STARTED" });
    failing.send({ type: "STOP" });
    failing.send({ type: "FAIL", error: "declared dead while draining" });
    expect(failing.status()).toBe("error");
    expect(failing.calls).toEqual(["heartbeat", "failure:declared dead while draining"]);
  });

  it("goes from created straight to stopped on STOP (never started)", () => {
    const h = harness();
    h.send({ type: "STOP" });
    expect(h.actor.getSnapshot().value).toBe("stopped");
    h.send({ type: "START" });
    expect(h.actor.getSnapshot().value).toBe("stopped");
  });

  it("goes to error when starting fails", () => {
    const h = harness();
    h.send({ type: "START" });
    h.send({ type: "START_FAILED", error: "broker unreachable" });
    expect(h.status()).toBe("error");
    expect(h.calls).toEqual([]);
  });

  it("ignores events that make no sense in a state", () => {
    const h = harness();
    for (const e of [
      { type: "STARTED" },
      { type: "TASKS_CHANGED", currentTasks: 2 },
      { type: "DRAIN" },
      { type: "FAIL", error: "x" },
    ] as WorkerMachineEvent[]) {
      h.send(e);
      expect(h.status()).toBe("stopped");
    }
    expect(h.actor.getSnapshot().value).toBe("created");
    expect(h.calls).toEqual([]);
  });
});
