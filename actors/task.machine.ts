import { setup, transition } from "xstate";

/**
 * The life of one task. This machine is the single source of truth of which status can follow
 * which: `taskTransitions` below is compiled from it once, at load, and the hot path (thousands of
 * tasks a second) looks transitions up there instead of running an actor per task. A unit test
 * checks the table against the machine for every state × event × guard outcome.
 */
export interface TaskMachineContext {
  /** Attempts started so far (1 during the first run). */
  attempt: number;
  retries: number;
}

export type TaskMachineEvent =
  | { type: "ENQUEUE" }
  | { type: "START" }
  | { type: "COMPLETE" }
  | { type: "FAIL"; unrecoverable?: boolean }
  | { type: "TIME_OUT" }
  | { type: "CANCEL" };

export type TaskEventType = TaskMachineEvent["type"];

export const TASK_EVENT_TYPES: readonly TaskEventType[] = [
  "ENQUEUE",
  "START",
  "COMPLETE",
  "FAIL",
  "TIME_OUT",
  "CANCEL",
];

/** Whether an attempt that failed or timed out is followed by another one. */
export function canRetry(attempt: number, retries: number, unrecoverable = false): boolean {
  return !unrecoverable && attempt <= retries;
}

export const taskMachine = setup({
  types: {
    context: {} as TaskMachineContext,
    events: {} as TaskMachineEvent,
    input: {} as { retries: number; attempt?: number },
  },
  guards: {
    retryAllowed: ({ context, event }) =>
      canRetry(context.attempt, context.retries, event.type === "FAIL" && event.unrecoverable === true),
  },
}).createMachine({
  id: "task",
  context: ({ input }) => ({ attempt: input.attempt ?? 0, retries: input.retries }),
  initial: "pending",
  states: {
    pending: {
      on: { ENQUEUE: "queued", CANCEL: "cancelled" },
    },
    queued: {
      on: {
        START: {
          target: "running",
        },
        CANCEL: "cancelled",
      },
    },
    running: {
      on: {
        COMPLETE: "completed",
        FAIL: [{ guard: "retryAllowed", target: "queued" }, { target: "failed" }],
        TIME_OUT: [{ guard: "retryAllowed", target: "queued" }, { target: "timeout" }],
        CANCEL: "cancelled",
      },
    },
    completed: { type: "final" },
    failed: { type: "final" },
    cancelled: { type: "final" },
    timeout: { type: "final" },
  },
});

export type TaskState = "pending" | "queued" | "running" | "completed" | "failed" | "cancelled" | "timeout";

export const TASK_STATES: readonly TaskState[] = [
  "pending",
  "queued",
  "running",
  "completed",
  "failed",
  "cancelled",
  "timeout",
];

/** [next state when a retry is allowed, next state when it is not]; absent = event ignored. */
export type TaskTransitionTable = Record<
  TaskState,
  Partial<Record<TaskEventType, readonly [TaskState, TaskState]>>
>;

/** Asks the machine itself what each state × event × guard outcome leads to. */
export function compileTaskTransitions(): TaskTransitionTable {
  const table = {} as TaskTransitionTable;
  for (const state of TASK_STATES) {
    const row: Partial<Record<TaskEventType, readonly [TaskState, TaskState]>> = {};
    for (const type of TASK_EVENT_TYPES) {
      const outcomes = [true, false].map((allowed) => {
        const snapshot = taskMachine.resolveState({
          value: state,
          context: { attempt: 1, retries: allowed ? 1 : 0 },
        });
        const [next] = transition(taskMachine, snapshot, { type } as TaskMachineEvent);
        return next.value as TaskState;
      }) as [TaskState, TaskState];
      if (outcomes[0] !== state || outcomes[1] !== state) row[type] = outcomes;
    }
    table[state] = row;
  }
  return table;
}

export const taskTransitions: TaskTransitionTable = compileTaskTransitions();

/**
 * The state that `event` moves a task in `state` to, or undefined when the machine ignores the
 * event there (e.g. anything after a terminal state: the first outcome wins).
 */
export function nextTaskState(
  state: TaskState,
  event: TaskEventType,
  retryAllowed: boolean,
): TaskState | undefined {
  const outcome = taskTransitions[state][event];
  return outcome === undefined ? undefined : outcome[retryAllowed ? 0 : 1];
}
