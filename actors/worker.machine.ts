import { assign, type SnapshotFrom, setup } from "xstate";

/**
 * A worker's lifecycle. Pure: it decides, src/worker.ts acts. Side effects are named actions
 * that the runtime provides (`machine.provide`); heartbeats are a delayed transition, so they
 * follow the actor's injected clock.
 *
 *   created ─START→ starting ─STARTED→ running ─DRAIN→ (running.mode.draining) ─STOPPED→ stopped
 *                       └─START_FAILED→ error         running ─FAIL→ error
 *
 * In `running`, three regions: activity (idle ⇄ busy, from the count of running tasks), mode
 * (accepting | draining) and heartbeat (a beat every `heartbeatIntervalMs`).
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
  | { type: "STOPPED" }
  | { type: "FAIL"; error: string };

/** The WorkerStatus a snapshot of this machine stands for. */
export function workerStatusOf(
  snapshot: SnapshotFrom<typeof workerMachine>,
): "idle" | "busy" | "draining" | "stopped" | "error" {
  if (snapshot.matches("error")) return "error";
  if (snapshot.matches("stopped") || snapshot.matches("created")) return "stopped";
  if (snapshot.matches({ running: { mode: "draining" } })) return "draining";
  if (snapshot.matches({ running: { activity: "busy" } })) return "busy";
  return "idle";
}

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
    created: { on: { START: "starting" } },
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
        STOPPED: "stopped",
        FAIL: {
          target: "error",
          actions: [
            assign({ error: ({ event }) => event.error }),
            { type: "reportFailure", params: ({ event }) => ({ error: event.error }) },
          ],
        },
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
    stopped: { type: "final" },
    error: { on: { STOPPED: "stopped" } },
  },
});
