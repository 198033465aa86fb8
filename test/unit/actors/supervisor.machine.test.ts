import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import {
  type RestartType,
  restartDelay,
  restartWanted,
  supervisorMachine,
} from "../../../actors/supervisor.machine.js";

function harness(maxRestarts = 3, periodMs = 10_000, restart?: RestartType) {
  const restarts: Array<{ childId: string; delayMs: number }> = [];
  const escalations: string[] = [];
  const actor = createActor(
    supervisorMachine.provide({
      actions: {
        restartChild: (_, p) => restarts.push(p),
        escalate: (_, p) => escalations.push(p.reason),
      },
    }),
    { input: { maxRestarts, periodMs, backoffBaseMs: 100, backoffMaxMs: 1000, restart } },
  ).start();
  const exit = (childId: string, at: number, abnormal = true) =>
    actor.send({ type: "CHILD_EXITED", childId, at, reason: abnormal ? "crashed" : "normal", abnormal });
  return { actor, restarts, escalations, exit };
}

describe("supervisor machine (one-for-one, restart intensity)", () => {
  it("restarts each dead child, with back-off growing inside the window", () => {
    const h = harness(3, 10_000);
    h.exit("w1", 1000);
    h.exit("w2", 2000);
    h.exit("w1", 3000);
    expect(h.restarts).toEqual([
      { childId: "w1", delayMs: 100 },
      { childId: "w2", delayMs: 200 },
      { childId: "w1", delayMs: 400 },
    ]);
    expect(h.actor.getSnapshot().value).toBe("supervising");
  });

  it("escalates past maxRestarts within the period, and then restarts nothing", () => {
    const h = harness(3, 10_000);
    for (const at of [1000, 2000, 3000]) h.exit("w", at);
    h.exit("w", 4000);
    expect(h.restarts).toHaveLength(3);
    expect(h.escalations).toHaveLength(1);
    expect(h.escalations[0]).toMatch(/more than 3 restarts within 10000 ms/);
    expect(h.actor.getSnapshot().value).toBe("escalated");
    h.exit("w", 5000);
    expect(h.restarts).toHaveLength(3);
  });

  it("forgets restarts older than the period (a sliding window)", () => {
    const h = harness(2, 10_000);
    h.exit("w", 0);
    h.exit("w", 5000);
    h.exit("w", 10_001); // the restart at 0 left the window
    expect(h.restarts).toHaveLength(3);
    expect(h.escalations).toHaveLength(0);
    h.exit("w", 12_000); // 5000 and 10001 are inside: third in the window
    expect(h.escalations).toHaveLength(1);
  });

  it("restarts by restart type: permanent always, transient after a crash only, temporary never", () => {
    expect(
      (["permanent", "transient", "temporary"] as const).map((r) => [
        restartWanted(r, true),
        restartWanted(r, false),
      ]),
    ).toEqual([
      [true, true],
      [true, false],
      [false, false],
    ]);
    const transient = harness(1, 10_000); // the default
    transient.exit("drained", 1000, false);
    transient.exit("drained-too", 2000, false);
    expect(transient.restarts).toEqual([]);
    expect(transient.escalations).toEqual([]); // clean exits do not count against the intensity
    transient.exit("crashed", 3000);
    expect(transient.restarts).toEqual([{ childId: "crashed", delayMs: 100 }]);
    const permanent = harness(1, 10_000, "permanent");
    permanent.exit("drained", 1000, false);
    expect(permanent.restarts).toEqual([{ childId: "drained", delayMs: 100 }]);
    permanent.exit("drained", 2000, false);
    expect(permanent.escalations).toHaveLength(1);
    const temporary = harness(1, 10_000, "temporary");
    temporary.exit("crashed", 1000);
    expect(temporary.restarts).toEqual([]);
    expect(temporary.actor.getSnapshot().value).toBe("supervising");
  });

  it("caps the back-off", () => {
    const context = {
      restart: "transient" as const,
      maxRestarts: 100,
      periodMs: 1e9,
      backoffBaseMs: 100,
      backoffMaxMs: 1000,
      restarts: [1, 2, 3, 4, 5, 6],
    };
    expect(restartDelay(context, 10)).toBe(1000);
    expect(restartDelay({ ...context, backoffBaseMs: 0 }, 10)).toBe(0);
  });

  it("with maxRestarts 0 escalates on the first death", () => {
    const h = harness(0, 1000);
    h.exit("w", 1);
    expect(h.restarts).toHaveLength(0);
    expect(h.escalations).toHaveLength(1);
  });

  it("ignores deaths after STOP (a shutdown is not a crash)", () => {
    const h = harness();
    h.actor.send({ type: "STOP" });
    h.exit("w", 1);
    expect(h.restarts).toHaveLength(0);
    expect(h.actor.getSnapshot().value).toBe("stopped");
  });
});
