import { assign, type SnapshotFrom, setup } from "xstate";

/**
 * A worker's lifecycle, and the only record of it: src/worker.ts asks this machine what it may do
 * (start, stop, take work) and provides its side effects as named actions (`machine.provide`);
 * heartbeats are a delayed transition, so they follow the actor's injected clock.
 *
 *   created ─START→ starting ─STARTED→ running ─STOP→ stopping ─STOPPED→ stopped
 *      └─STOP→ stopped  └─START_FAILED→ error      └─FAIL→ error ←FAIL─┘
 *
 * In `running`, three regions: activity (idle ⇄ busy, from the count of running tasks), mode
 * (accepting | draining: a graceful stop lets running tasks finish) and heartbeat (a beat every
 * `heartbeatIntervalMs`). FAIL (declared dead, fenced, stalled) reports the failure to the
 * supervisor (`reportFailure`), which decides whether a replacement starts.
 */
export interface WorkerMachineContext {
  heartbeatIntervalMs: number;
  currentTasks: number;
  error?: string;
}

export type WorkerMachineEvent =
  | { type: "START" }
  | { type: "STARTED" }
  | { type: "START_FAILED"; error: string }
  | { type: "TASKS_CHANGED"; currentTasks: number }
  | { type: "DRAIN" }
  | { type: "STOP" }
  | { type: "STOPPED" }
  | { type: "FAIL"; error: string };

/** The WorkerStatus a snapshot of this machine stands for. */
export function workerStatusOf(
  snapshot: SnapshotFrom<typeof workerMachine>,
): "idle" | "busy" | "draining" | "stopped" | "error" {
  if (snapshot.matches("error")) return "error";
  if (snapshot.matches("stopped") || snapshot.matches("created")) return "stopped";
  if (snapshot.matches("stopping") || snapshot.matches({ running: { mode: "draining" } })) return "draining";
  if (snapshot.matches({ running: { activity: "busy" } })) return "busy";
  return "idle";
}

/** FAIL, from running or stopping: the error is kept and reported to the supervisor. */
const FAILED = {
  target: "error",
  actions: [
    "recordError",
    {
      type: "reportFailure",
      params: ({ event }: { event: WorkerMachineEvent }) => ({
        error: event.type === "FAIL" ? event.error : "",
      }),
    },
  ],
} as const;

export const workerMachine = setup({
  types: {
    context: {} as WorkerMachineContext,
    events: {} as WorkerMachineEvent,
    input: {} as { heartbeatIntervalMs: number },
  },
  actions: {
    /** Provided by the runtime: publish this worker's info on the heartbeat subject. */
    sendHeartbeat: () => {},
    /** Provided by the runtime: announce that the worker stopped taking work. */
    announceDraining: () => {},
    /** Provided by the runtime: the worker failed; its supervisor decides what happens next. */
    reportFailure: (_: unknown, _params: { error: string }) => {},
    recordError: assign({ error: ({ event }) => (event.type === "FAIL" ? event.error : undefined) }),
    recordCount: assign({
      currentTasks: ({ event, context }) =>
        event.type === "TASKS_CHANGED" ? event.currentTasks : context.currentTasks,
    }),
  },
  guards: {
    hasTasks: ({ event }) => event.type === "TASKS_CHANGED" && event.currentTasks > 0,
  },
  delays: {
    heartbeatInterval: ({ context }) => context.heartbeatIntervalMs,
  },
}).createMachine({
  id: "worker",
  context: ({ input }) => ({ heartbeatIntervalMs: input.heartbeatIntervalMs, currentTasks: 0 }),
  initial: "created",
  states: {
    created: { on: { START: "starting", STOP: "stopped" } },
    starting: {
      on: {
        STARTED: "running",
        START_FAILED: {
          target: "error",
          actions: assign({ error: ({ event }) => event.error }),
        },
      },
    },
    running: {
      type: "parallel",
      entry: "sendHeartbeat",
      on: {
        STOP: "stopping",
        FAIL: FAILED,
      },
      states: {
        activity: {
          initial: "idle",
          states: {
            idle: {
              on: {
                TASKS_CHANGED: [
                  { guard: "hasTasks", target: "busy", actions: "recordCount" },
                  { actions: "recordCount" },
                ],
              },
            },
            busy: {
              on: {
                TASKS_CHANGED: [
                  { guard: "hasTasks", actions: "recordCount" },
                  { target: "idle", actions: "recordCount" },
                ],
              },
            },
          },
        },
        mode: {
          initial: "accepting",
          states: {
            accepting: { on: { DRAIN: { target: "draining", actions: "announceDraining" } } },
            draining: {},
          },
        },
        heartbeat: {
          initial: "beating",
          states: {
            beating: {
              after: { heartbeatInterval: { target: "beating", reenter: true, actions: "sendHeartbeat" } },
            },
          },
        },
      },
    },
    stopping: { on: { STOPPED: "stopped", FAIL: FAILED } },
    stopped: { type: "final" },
    error: { type: "final" },
  },
});
