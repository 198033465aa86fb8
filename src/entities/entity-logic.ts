/**
 * What an entity's behaviour looks like to the runtime: a pure step from (state, event) to the next
 * state plus the effects to carry out once that state is stored. Two implementations: an XState
 * machine (machine-logic.ts) and the reducer methods of an `@Entity` class (reducer-logic.ts).
 * State is held as the logic likes it in memory; `persist` turns it into plain JSON for the store
 * and `restore` back (throwing when it cannot, never guessing).
 */

/** An event: a plain JSON object with a string `type`. */
export interface EntityEvent {
  type: string;
  [key: string]: unknown;
}

/** What `ask()` and `get()` answer: the entity's persisted snapshot after an event, and its version. */
export interface EntitySnapshot<TContext = unknown, TValue = unknown> {
  /** The entity id. */
  id: string;
  /** The machine's state value ("active" for an @Entity class). */
  value: TValue;
  context: TContext;
  /** "active" | "done" (a final state) | "error" | "stopped", as XState reports it. */
  status: string;
  /** Events applied to this entity so far (0 before the first). */
  version: number;
}

/** Something to do after a new state was stored. */
export type Effect =
  /** A delayed event to the entity itself (XState `after`, `raise(…, { delay })`): a durable timer. */
  | { k: "timer"; id: string; event: EntityEvent; delayMs: number }
  /** A timer cancelled (its state was left, `cancel(id)`). */
  | { k: "cancel"; id: string }
  /** An event to another entity (or itself), sent at least once, applied once. */
  | { k: "send"; entity: string; partitions: number; to: string; event: EntityEvent }
  /** An event for the event bus (XState `emit`). */
  | { k: "emit"; event: EntityEvent }
  /** A local side effect (an action function of the machine), run at least once after the write. */
  | { k: "run"; run: () => void };

export type StepResult =
  | { kind: "applied"; state: unknown; effects: Effect[] }
  | { kind: "rejected"; value: unknown }
  | { kind: "failed"; reason: string };

export interface EntityView {
  value: unknown;
  context: unknown;
  status: string;
}

export interface EntityLogic {
  /** The state of an entity that has never received an event, and the effects of entering it. */
  initial(id: string): { state: unknown; effects: Effect[] };
  /** One event. Never throws: a throwing machine is `failed`, no transition is `rejected`. */
  apply(state: unknown, event: EntityEvent, id: string): StepResult;
  /** Plain JSON for the store. */
  persist(state: unknown): unknown;
  /** The state stored by `persist`; throws (any error) when this logic cannot take it. */
  restore(persisted: unknown): unknown;
  view(state: unknown): EntityView;
}
