/**
 * Actions for use inside an entity's machine. `sendToEntity(Order, id, event)` sends an event to
 * another entity (or the same type): it leaves after the sender's new state is stored, at least
 * once (it is kept with the state until sent), and the receiver applies it once (its id is derived
 * from the sender's id and version). To publish on the event bus, use XState's own `emit()`.
 */
import type { EntityEvent } from "./entity-logic.js";

/** Marks the action functions made by sendToEntity (read by machine-logic.ts). */
export const ENTITY_SEND: unique symbol = Symbol.for("fastagentic.entity.send");

/** What an action gets from XState: `{ context, event, … }`. */
export interface EntityActionArgs<TContext = unknown, TEvent = EntityEvent> {
  context: TContext;
  event: TEvent;
}

export interface EntityTarget {
  readonly name: string;
  readonly partitions: number;
}

export interface EntitySendSpec {
  target: EntityTarget;
  to: string | ((args: never) => string);
  event: EntityEvent | ((args: never) => EntityEvent);
}

/**
 * An action that sends `event` to the entity `to` of type `target` (a definition from
 * defineEntity, or an @Entity class's definition). `to` and `event` may be functions of
 * `{ context, event }`.
 */
export function sendToEntity<TContext = unknown, TEvent = EntityEvent>(
  target: EntityTarget,
  to: string | ((args: EntityActionArgs<TContext, TEvent>) => string),
  event: EntityEvent | ((args: EntityActionArgs<TContext, TEvent>) => EntityEvent),
): (args: EntityActionArgs<TContext, TEvent>) => void {
  const action = (_args: EntityActionArgs<TContext, TEvent>): void => {
    // Runs only when the machine is driven outside the entity runtime (e.g. createActor in a test).
  };
  const spec: EntitySendSpec = {
    target,
    to: to as EntitySendSpec["to"],
    event: event as EntitySendSpec["event"],
  };
  return Object.assign(action, { [ENTITY_SEND]: spec });
}
