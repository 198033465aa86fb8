import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import {
  canRetry,
  compileTaskTransitions,
  nextTaskState,
  TASK_EVENT_TYPES,
  TASK_STATES,
  type TaskMachineEvent,
  type TaskState,
  taskMachine,
} from "../../../actors/task.machine.js";

/** The graph the product promises, written out by hand: [retry allowed, retry not allowed]. */
const EXPECTED: Record<TaskState, Partial<Record<TaskMachineEvent["type"], [TaskState, TaskState]>>> = {
  pending: { ENQUEUE: ["queued", "queued"], CANCEL: ["cancelled", "cancelled"] },
  queued: { START: ["running", "running"], CANCEL: ["cancelled", "cancelled"] },
  running: {
    COMPLETE: ["completed", "completed"],
    FAIL: ["queued", "failed"],
    TIME_OUT: ["queued", "timeout"],
    CANCEL: ["cancelled", "cancelled"],
  },
  completed: {},
  failed: {},
  cancelled: {},
  timeout: {},
};

describe("task machine", () => {
  it("compiles to exactly the promised transition graph (every state × event × guard outcome)", () => {
    const table = compileTaskTransitions();
    for (const state of TASK_STATES) {
      for (const event of TASK_EVENT_TYPES) {
        for (const allowed of [true, false]) {
          const expected = EXPECTED[state][event];
          expect(nextTaskState(state, event, allowed), `${state} + ${event} (retry ${allowed})`).toBe(
            expected === undefined ? undefined : expected[allowed ? 0 : 1],
          );
        }
      }
    }
    // The lists the compiler loops over are the machine's own states and events (not a copy that
    // could miss one), and the hand-written graph covers every state.
    expect(Object.keys(table).sort()).toEqual(Object.keys(taskMachine.root.states).sort());
    expect(Object.keys(EXPECTED).sort()).toEqual(Object.keys(taskMachine.root.states).sort());
    const handled = new Set(Object.values(taskMachine.root.states).flatMap((node) => node.ownEvents));
    expect([...TASK_EVENT_TYPES].sort()).toEqual([...handled].sort());
  });

  it("agrees with a live actor driven through a full life with retries", () => {
    const actor = createActor(taskMachine, { input: { retries: 2 } }).start();
    const path: string[] = [actor.getSnapshot().value as string];
    const send = (type: TaskMachineEvent["type"]) => {
      actor.send({ type } as TaskMachineEvent);
      path.push(actor.getSnapshot().value as string);
    };
    send("ENQUEUE");
    // attempt counting is the caller's: feed the context by starting actors at given attempts
    send("START");
    expect(path).toEqual(["pending", "queued", "running"]);
    for (const [attempt, expected] of [
      [1, "queued"],
      [2, "queued"],
      [3, "failed"],
    ] as const) {
      const a = createActor(taskMachine, {
        input: { retries: 2, attempt },
        snapshot: taskMachine.resolveState({ value: "running", context: { attempt, retries: 2 } }),
      }).start();
      a.send({ type: "FAIL" });
      expect(a.getSnapshot().value).toBe(expected);
      expect(nextTaskState("running", "FAIL", canRetry(attempt, 2))).toBe(expected);
    }
  });

  it("never retries an unrecoverable failure", () => {
    expect(canRetry(1, 5, true)).toBe(false);
    const a = createActor(taskMachine, {
      input: { retries: 5 },
      snapshot: taskMachine.resolveState({ value: "running", context: { attempt: 1, retries: 5 } }),
    }).start();
    a.send({ type: "FAIL", unrecoverable: true });
    expect(a.getSnapshot().value).toBe("failed");
  });

  it("keeps the first terminal state: later outcomes are ignored", () => {
    for (const terminal of ["completed", "failed", "cancelled", "timeout"] as const) {
      for (const event of TASK_EVENT_TYPES) expect(nextTaskState(terminal, event, true)).toBeUndefined();
    }
  });
});
