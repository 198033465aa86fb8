/**
 * The class form of entities, for decorator users:
 *
 *   @Entity("cart", { partitions: 8 })
 *   class Cart {
 *     initial(id: string) { return { items: [] }; }                  // optional; default {}
 *     @Handler("ADD") add(state: CartState, event: AddEvent) { return { items: [...state.items, event.sku] }; }
 *   }
 *   coordinator.register(new Cart());           // where entities are held
 *   coordinator.entity(Cart, "c-1").ask({ type: "ADD", sku: "a" });
 *
 * Each `@Handler(eventType)` method takes (state, event) and returns the next state (plain JSON),
 * with the guarantees of a machine entity. Works with standard decorators and experimentalDecorators.
 */
import "reflect-metadata";
import { handlerMethodsOf } from "../decorators/actor-explorer.js";
import { decoratorCall } from "../decorators/decorator-call.js";
import { ACTOR_METADATA, ENTITY_METADATA } from "../decorators/metadata-keys.js";
import { ConfigError } from "../errors.js";
import {
  type AnyEntityDefinition,
  assertEntityName,
  type EntityOptions,
  isEntityDefinition,
  makeDefinition,
  type ResolvedEntityOptions,
  resolveEntityOptions,
} from "./define-entity.js";
import type { EntityLogic } from "./entity-logic.js";
import { type Reducer, ReducerLogic } from "./reducer-logic.js";

// biome-ignore lint/suspicious/noExplicitAny: the standard library's own constraint for class decorators.
type AnyClass = abstract new (...args: any) => object;

export interface EntityDecorator {
  <C extends AnyClass>(value: C, context: ClassDecoratorContext<C>): void;
  <C extends AnyClass>(target: C): void;
}

interface EntityMetadata {
  name: string;
  options: ResolvedEntityOptions;
}

export function Entity(name: string, options?: EntityOptions): EntityDecorator {
  const where = `@Entity(${JSON.stringify(name)})`;
  assertEntityName(name, where);
  const metadata: EntityMetadata = { name, options: resolveEntityOptions(options, where) };
  const decorate = (...args: unknown[]): void => {
    const call = decoratorCall(args);
    const cls =
      call.form === "standard" && call.kind === "class"
        ? call.value
        : call.form === "single"
          ? call.value
          : undefined;
    if (typeof cls !== "function") {
      throw new ConfigError(
        `${where} decorates classes: put it on a class declaration, \`@Entity("cart") class Cart {}\`.`,
      );
    }
    Reflect.defineMetadata(ENTITY_METADATA, metadata, cls);
  };
  return decorate as EntityDecorator;
}

const byClass = new WeakMap<object, AnyEntityDefinition>();
const byInstance = new WeakMap<object, AnyEntityDefinition>();

/** A definition, an @Entity class or an instance of one: its definition; anything else: undefined. */
export function entityDefinitionOf(target: unknown, owner: string): AnyEntityDefinition | undefined {
  if (isEntityDefinition(target)) return target;
  if (typeof target === "function") {
    const metadata = entityMetadata(target);
    if (!metadata) return undefined;
    let def = byClass.get(target);
    if (!def) {
      // A reference needs the name and options only; the logic lives with a registered instance.
      def = makeDefinition(metadata.name, unregisteredLogic(metadata.name, target.name), metadata.options);
      byClass.set(target, def);
    }
    return def;
  }
  if (typeof target !== "object" || target === null) return undefined;
  let cls: unknown;
  try {
    cls = (target as { constructor?: unknown }).constructor;
  } catch {
    return undefined; // a Proxy whose reads throw is no entity
  }
  const metadata = typeof cls === "function" ? entityMetadata(cls) : undefined;
  if (!metadata) return undefined;
  let def = byInstance.get(target);
  if (!def) {
    def = makeDefinition(metadata.name, reducerLogicOf(target, cls, `${owner}.register()`), metadata.options);
    byInstance.set(target, def);
  }
  return def;
}

function entityMetadata(cls: unknown): EntityMetadata | undefined {
  if (typeof cls !== "function") return undefined;
  const metadata = Reflect.getMetadata(ENTITY_METADATA, cls) as EntityMetadata | undefined;
  if (metadata && Reflect.getMetadata(ACTOR_METADATA, cls) !== undefined) {
    throw new ConfigError(
      `${cls.name || "A class"} is decorated with both @Actor and @Entity; a class is one or the other. ` +
        "Split it into an @Actor class for tasks and an @Entity class for the entity.",
    );
  }
  return metadata;
}

function reducerLogicOf(instance: object, cls: unknown, owner: string): EntityLogic {
  const { className, handlers } = handlerMethodsOf(cls, owner);
  if (handlers.length === 0) {
    throw new ConfigError(
      `${owner}: the @Entity class ${className} has no @Handler("EVENT_TYPE") methods, so it would accept no event. ` +
        "Decorate its (state, event) => nextState methods with @Handler.",
    );
  }
  const reducers = new Map<string, Reducer>();
  for (const h of handlers) {
    const method = (instance as Record<string | symbol, unknown>)[h.method];
    if (typeof method !== "function") {
      throw new ConfigError(
        `${owner}: ${className}.${String(h.method)} (the @Handler for "${h.type}") is not a function.`,
      );
    }
    reducers.set(h.type, (method as Reducer).bind(instance));
  }
  const initial = (instance as { initial?: unknown }).initial;
  if (initial !== undefined && typeof initial !== "function") {
    throw new ConfigError(`${owner}: ${className}.initial must be a method (id) => initial state.`);
  }
  const initialState =
    initial === undefined ? () => ({}) : (initial as (id: string) => unknown).bind(instance);
  return new ReducerLogic(reducers, initialState);
}

function unregisteredLogic(name: string, className: string): EntityLogic {
  const fail = (): never => {
    throw new ConfigError(
      `The entity "${name}" (${className}) runs where an instance is registered: register(new ${className}()).`,
    );
  };
  return { initial: fail, apply: fail, persist: fail, restore: fail, view: fail };
}
