/**
 * What Worker, WorkerPool and Coordinator share to host entities: the `entities` option and the
 * check of what `register()` was given (a definition, an @Entity instance, or neither).
 */
import type { StateStore } from "../../transports/state-store.js";
import { validateKeys } from "../config.js";
import { ConfigError } from "../errors.js";
import { showValue } from "../limits.js";
import type { AnyEntityDefinition } from "./define-entity.js";
import { entityDefinitionOf } from "./entity.decorator.js";
import type { EntityEventSink } from "./entity-outbox.js";

/** The `entities` option of Worker, WorkerPool and Coordinator. */
export interface EntitiesOptions {
  /** Where entity state lives (default: the transport's; PostgreSQL at FASTAGENTIC_STATE_STORE on RabbitMQ). */
  stateStore?: StateStore;
  /** Where entity machines' emit() events go (the event bus, or anything with its publish()). */
  events?: EntityEventSink;
  /** A worker silent this long loses its entity partitions to the others (default 10,000 ms). */
  failoverMs?: number;
}

export function resolveEntitiesOptions(input: EntitiesOptions | undefined, where: string): EntitiesOptions {
  validateKeys(`${where}.entities`, input, ["stateStore", "events", "failoverMs"]);
  const o = input ?? {};
  if (o.failoverMs !== undefined && !(Number.isInteger(o.failoverMs) && o.failoverMs >= 100)) {
    throw new ConfigError(
      `${where}.entities.failoverMs must be an integer ≥ 100, got ${showValue(o.failoverMs)}.`,
    );
  }
  if (o.stateStore !== undefined && typeof o.stateStore?.put !== "function") {
    throw new ConfigError(
      `${where}.entities.stateStore must be a StateStore (e.g. stateStoreFromUrl("postgres://…")).`,
    );
  }
  if (o.events !== undefined && typeof o.events?.publish !== "function") {
    throw new ConfigError(
      `${where}.entities.events must have a publish(type, data, options) method (the event bus).`,
    );
  }
  return o;
}

/**
 * The entity definition `register(target)` was given, or undefined when it is no entity (an
 * @Actor instance, say). An @Entity class itself is refused: its methods run on an instance.
 */
export function entityToRegister(target: unknown, owner: string): AnyEntityDefinition | undefined {
  const def = entityDefinitionOf(target, owner);
  if (def && typeof target === "function") {
    const name = (target as { name?: string }).name || "the class";
    throw new ConfigError(
      `${owner}.register(): got the @Entity class ${name} itself; register an instance: register(new ${name}()).`,
    );
  }
  return def;
}
