import { assign, setup } from "xstate";

/**
 * The coordinator's lifecycle, health checks and auto-scaling decisions. Pure: timers are
 * delayed transitions on the actor's injected clock; sampling the load, checking heartbeats and
 * changing the worker count are actions that src/coordinator.ts provides.
 *
 *   idle ─START→ starting ─STARTED→ running ─STOP→ stopping ─STOPPED→ stopped
 *                                         └─ESCALATE→ stopping (not graceful; the error is kept)
 *
 * ESCALATE: the supervision below gave up (its pool kept failing past the restart intensity); as
 * the root of the tree in its process, the coordinator stops and reports it to the process.
 *
 * Auto-scaling (with `autoScale`): every `autoScaleIntervalMs` the runtime samples queue depth
 * and sends SCALE_SAMPLE; `decideScale` picks the new worker count.
 */
export interface ScalingPolicy {
  minWorkers: number;
  maxWorkers: number;
  scaleUpThreshold: number;
  scaleDownThreshold: number;
  /** Depth must stay under scaleDownThreshold this long before each worker is removed. */
  scaleDownDelayMs: number;
}

export interface CoordinatorContext extends ScalingPolicy {
  autoScale: boolean;
  healthCheckIntervalMs: number;
  autoScaleIntervalMs: number;
  /** Since when depth has been under scaleDownThreshold (undefined: it is not). */
  lowSince?: number;
  error?: string;
}

export interface ScaleSample {
  depth: number;
  workers: number;
  now: number;
}

export type CoordinatorEvent =
  | { type: "START" }
  | { type: "STARTED" }
  | { type: "START_FAILED"; error: string }
  | ({ type: "SCALE_SAMPLE" } & ScaleSample)
  | { type: "STOP"; graceful: boolean }
  | { type: "ESCALATE"; error: string }
  | { type: "STOPPED" };

export interface ScaleDecision {
  /** The worker count to move to, or undefined to stay. */
  target?: number;
  lowSince?: number;
}

/**
 * Hysteresis: scale up at once when depth exceeds scaleUpThreshold (to ceil(depth / threshold),
 * at least one more); scale down one worker at a time, only after depth stayed under
 * scaleDownThreshold for scaleDownDelayMs; between the thresholds, hold.
 */
export function decideScale(
  policy: ScalingPolicy,
  lowSince: number | undefined,
  s: ScaleSample,
): ScaleDecision {
  const clamp = (n: number) => Math.max(policy.minWorkers, Math.min(policy.maxWorkers, n));
  if (s.workers < policy.minWorkers || s.workers > policy.maxWorkers) {
    return { target: clamp(s.workers) };
  }
  if (s.depth > policy.scaleUpThreshold) {
    const want = clamp(Math.max(s.workers + 1, Math.ceil(s.depth / Math.max(1, policy.scaleUpThreshold))));
    return want !== s.workers ? { target: want } : {};
  }
  if (s.depth < policy.scaleDownThreshold && s.workers > policy.minWorkers) {
    if (lowSince === undefined) return { lowSince: s.now };
    if (s.now - lowSince >= policy.scaleDownDelayMs) return { target: s.workers - 1, lowSince: s.now };
    return { lowSince };
  }
  return {};
}

export type CoordinatorInput = Omit<CoordinatorContext, "lowSince" | "error">;

export const coordinatorMachine = setup({
  types: {
    context: {} as CoordinatorContext,
    events: {} as CoordinatorEvent,
    input: {} as CoordinatorInput,
  },
  actions: {
    /** Provided: remove workers whose heartbeats stopped; their supervisors replace them. */
    checkHealth: () => {},
    /** Provided: measure queue depth and worker count, then send SCALE_SAMPLE. */
    sampleLoad: () => {},
    /** Provided: set the worker count. */
    scaleTo: (_: unknown, _params: { workers: number }) => {},
    /** Provided: stop workers (draining them when graceful), then send STOPPED. */
    shutdown: (_: unknown, _params: { graceful: boolean }) => {},
    recordLowSince: assign({
      lowSince: ({ context, event }) =>
        event.type === "SCALE_SAMPLE"
          ? decideScale(context, context.lowSince, event).lowSince
          : context.lowSince,
    }),
  },
  guards: {
    autoScaling: ({ context }) => context.autoScale,
    scaleNeeded: ({ context, event }) =>
      context.autoScale &&
      event.type === "SCALE_SAMPLE" &&
      decideScale(context, context.lowSince, event).target !== undefined,
  },
  delays: {
    healthInterval: ({ context }) => context.healthCheckIntervalMs,
    scaleInterval: ({ context }) => context.autoScaleIntervalMs,
  },
}).createMachine({
  id: "coordinator",
  context: ({ input }) => ({ ...input }),
  initial: "idle",
  states: {
    idle: { on: { START: "starting" } },
    starting: {
      on: {
        STARTED: "running",
        START_FAILED: { target: "idle", actions: assign({ error: ({ event }) => event.error }) },
      },
    },
    running: {
      type: "parallel",
      on: {
        STOP: {
          target: "stopping",
          actions: { type: "shutdown", params: ({ event }) => ({ graceful: event.graceful }) },
        },
        ESCALATE: {
          target: "stopping",
          actions: [
            assign({ error: ({ event }) => event.error }),
            { type: "shutdown", params: { graceful: false } },
          ],
        },
        SCALE_SAMPLE: [
          {
            guard: "scaleNeeded",
            actions: [
              {
                type: "scaleTo",
                params: ({ context, event }) => ({
                  workers: decideScale(context, context.lowSince, event).target as number,
                }),
              },
              "recordLowSince",
            ],
          },
          { guard: "autoScaling", actions: "recordLowSince" },
        ],
      },
      states: {
        health: {
          initial: "waiting",
          states: {
            waiting: {
              after: { healthInterval: { target: "waiting", reenter: true, actions: "checkHealth" } },
            },
          },
        },
        scaling: {
          initial: "deciding",
          states: {
            deciding: { always: [{ guard: "autoScaling", target: "sampling" }, { target: "off" }] },
            sampling: {
              after: { scaleInterval: { target: "sampling", reenter: true, actions: "sampleLoad" } },
            },
            off: {},
          },
        },
      },
    },
    stopping: { on: { STOPPED: "stopped" } },
    stopped: { type: "final" },
  },
});
