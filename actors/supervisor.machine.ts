import { assign, setup } from "xstate";

/**
 * One-for-one supervision, as in Erlang/OTP: a child that exits is restarted or not by its restart
 * type — `permanent` always, `transient` only after an abnormal exit (a crash, not a clean drain),
 * `temporary` never — with exponential back-off, as long as no more than `maxRestarts` restarts
 * happened within `periodMs` (the restart intensity). Past it, the supervisor gives up and
 * escalates to its parent. Pure: time arrives with each event (`at`), restarting and escalating
 * are provided actions.
 */
export type RestartType = "permanent" | "transient" | "temporary";

/** Whether a child of this restart type is restarted after this exit. */
export function restartWanted(restart: RestartType, abnormal: boolean): boolean {
  return restart === "permanent" || (restart === "transient" && abnormal);
}

export interface SupervisorContext {
  restart: RestartType;
  maxRestarts: number;
  periodMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Times of the restarts inside the current window. */
  restarts: number[];
  escalation?: string;
}

export type SupervisorEvent =
  /** A child ended; `abnormal` unless it stopped cleanly (asked to, or drained). */
  { type: "CHILD_EXITED"; childId: string; at: number; reason: string; abnormal: boolean } | { type: "STOP" };

export interface SupervisorInput {
  /** Default "transient". */
  restart?: RestartType;
  maxRestarts: number;
  periodMs: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

/** Restart times still inside the window that ends at `at`. */
export function recentRestarts(restarts: readonly number[], at: number, periodMs: number): number[] {
  return restarts.filter((t) => at - t < periodMs);
}

/** Back-off before the next restart: base × 2^(restarts in the window), capped. */
export function restartDelay(context: SupervisorContext, at: number): number {
  const n = recentRestarts(context.restarts, at, context.periodMs).length;
  if (context.backoffBaseMs === 0) return 0;
  return Math.min(context.backoffMaxMs, context.backoffBaseMs * 2 ** n);
}

export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
    input: {} as SupervisorInput,
  },
  actions: {
    /** Provided by the runtime: start a replacement for `childId` after `delayMs`. */
    restartChild: (_: unknown, _params: { childId: string; delayMs: number }) => {},
    /** Provided by the runtime: tell the parent that this subtree gave up. */
    escalate: (_: unknown, _params: { reason: string }) => {},
  },
  guards: {
    notRestarted: ({ context, event }) =>
      event.type === "CHILD_EXITED" && !restartWanted(context.restart, event.abnormal),
    withinIntensity: ({ context, event }) =>
      event.type === "CHILD_EXITED" &&
      recentRestarts(context.restarts, event.at, context.periodMs).length < context.maxRestarts,
  },
}).createMachine({
  id: "supervisor",
  context: ({ input }) => ({
    restart: input.restart ?? "transient",
    maxRestarts: input.maxRestarts,
    periodMs: input.periodMs,
    backoffBaseMs: input.backoffBaseMs ?? 100,
    backoffMaxMs: input.backoffMaxMs ?? 10_000,
    restarts: [],
  }),
  initial: "supervising",
  states: {
    supervising: {
      on: {
        CHILD_EXITED: [
          { guard: "notRestarted" },
          {
            guard: "withinIntensity",
            actions: [
              {
                type: "restartChild",
                params: ({ context, event }) => ({
                  childId: event.childId,
                  delayMs: restartDelay(context, event.at),
                }),
              },
              assign({
                restarts: ({ context, event }) => [
                  ...recentRestarts(context.restarts, event.at, context.periodMs),
                  event.at,
                ],
              }),
            ],
          },
          {
            target: "escalated",
            actions: [
              assign({
                escalation: ({ context, event }) =>
                  `more than ${context.maxRestarts} restarts within ${context.periodMs} ms ` +
                  `(last: ${event.childId} exited: ${event.reason})`,
              }),
              { type: "escalate", params: ({ context }) => ({ reason: context.escalation ?? "" }) },
            ],
          },
        ],
        STOP: "stopped",
      },
    },
    escalated: { type: "final" },
    stopped: { type: "final" },
  },
});
