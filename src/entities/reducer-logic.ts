/**
 * The logic of an `@Entity` class: one method per event type, `(state, event) => nextState`, on
 * plain JSON state. An event without a method is rejected; a method that throws (or returns
 * undefined) fails the event; the state is unchanged either way. Its snapshot has the value
 * "active", so ask()/get() answer the same shape as for a machine.
 */
import { describeThrown } from "../errors.js";
import type { Effect, EntityEvent, EntityLogic, EntityView, StepResult } from "./entity-logic.js";

export type Reducer = (state: unknown, event: EntityEvent) => unknown;

interface ReducerState {
  context: unknown;
}

export class ReducerLogic implements EntityLogic {
  constructor(
    private readonly reducers: ReadonlyMap<string, Reducer>,
    private readonly initialState: (id: string) => unknown,
  ) {}

  initial(id: string): { state: unknown; effects: Effect[] } {
    return { state: { context: this.initialState(id) ?? {} } satisfies ReducerState, effects: [] };
  }

  apply(state: unknown, event: EntityEvent): StepResult {
    const reducer = this.reducers.get(event.type);
    if (reducer === undefined) return { kind: "rejected", value: "active" };
    let next: unknown;
    try {
      next = reducer((state as ReducerState).context, event);
    } catch (error) {
      return { kind: "failed", reason: describeThrown(error) };
    }
    if (next === undefined) {
      return {
        kind: "failed",
        reason: `its method for "${event.type}" returned undefined instead of the next state`,
      };
    }
    if (next instanceof Promise) {
      return {
        kind: "failed",
        reason: `its method for "${event.type}" is async; entity methods must return the next state`,
      };
    }
    return { kind: "applied", state: { context: next } satisfies ReducerState, effects: [] };
  }

  persist(state: unknown): unknown {
    return { status: "active", value: "active", context: (state as ReducerState).context };
  }

  restore(persisted: unknown): unknown {
    if (typeof persisted !== "object" || persisted === null || !("context" in persisted)) {
      throw new Error("the stored snapshot has no context");
    }
    return { context: (persisted as ReducerState).context } satisfies ReducerState;
  }

  view(state: unknown): EntityView {
    return { value: "active", context: (state as ReducerState).context, status: "active" };
  }
}
