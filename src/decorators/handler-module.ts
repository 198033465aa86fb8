/**
 * What a handlers module (the CLI's `--handlers ./handlers.js`) exports by default, turned into
 * something to register: an `@Actor` class (constructed with no arguments), an actor instance, an
 * array of those, or an object mapping task types to functions.
 */
import { entityDefinitionOf } from "../entities/entity.decorator.js";
import { ConfigError } from "../errors.js";
import { assertTaskType } from "../names.js";
import type { TaskHandler } from "../types.js";
import { type ExploredActor, exploreActor, isActorClass } from "./actor-explorer.js";

/** Anything with register() and registerHandler(): Worker, WorkerPool, Coordinator. */
export interface HandlerModuleTarget {
  register(instance: object): unknown;
  registerHandler(type: string, fn: TaskHandler): unknown;
}

export interface HandlerModule {
  /** Where the module came from (for messages). */
  source: string;
  /** The module's actor instances, for `register()`. */
  actors: object[];
  /** The module's entity types (definitions, @Entity instances), for `register()`. */
  entities: object[];
  /** The module's plain handlers (from an object export), for `registerHandler()`. */
  handlers: Map<string, TaskHandler>;
  /** Every task type the module handles. */
  types: string[];
  /** Tags the module's actors require of the workers that run them (the union). */
  tags: string[];
  /** The maxConcurrentTasks its actors ask for, when one does. */
  maxConcurrentTasks: number | undefined;
  /** Registers every actor and handler on a Worker, WorkerPool or Coordinator. */
  registerOn(target: HandlerModuleTarget): void;
}

const USAGE =
  "Export default an @Actor class, an array of them (entity types from defineEntity() and @Entity " +
  "classes too), or an object mapping task types to handler functions (export default { resize: async (data) => ... }).";

/**
 * Turns a module (its namespace from `await import(...)`, or its default export) into a
 * HandlerModule. Throws a ConfigError naming `source` when it exports nothing usable.
 */
export function handlersFromModule(exported: unknown, source = "the handlers module"): HandlerModule {
  const value = unwrapDefault(exported, source);
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0) throw new ConfigError(`${source} exports an empty array. ${USAGE}`);
  const actors: ExploredActor[] = [];
  const handlers = new Map<string, TaskHandler>();
  const entities: object[] = [];
  items.forEach((item, i) => {
    const where = Array.isArray(value)
      ? `${source} (default export, item ${i})`
      : `${source} (default export)`;
    if (entityDefinitionOf(item, where) !== undefined) {
      entities.push(
        typeof item === "function" ? construct(item as new () => object, where) : (item as object),
      );
    } else if (isActorClass(item)) {
      actors.push(exploreActor(construct(item, where), where));
    } else if (typeof item === "object" && item !== null && isActorClass(item.constructor)) {
      actors.push(exploreActor(item, where));
    } else if (!Array.isArray(value) && isPlainObject(item)) {
      for (const [type, fn] of handlerEntries(item, where)) handlers.set(type, fn);
    } else {
      throw new ConfigError(`${where} is ${describe(item)}, which handles no task type. ${USAGE}`);
    }
  });
  const types = [...handlers.keys()];
  for (const a of actors) {
    for (const h of a.handlers) {
      if (types.includes(h.type)) {
        throw new ConfigError(
          `${source} has two handlers for "${h.type}" (one in ${a.name}). One task type has one handler.`,
        );
      }
      types.push(h.type);
    }
  }
  const concurrency = [...new Set(actors.flatMap((a) => a.options.maxConcurrentTasks ?? []))];
  if (concurrency.length > 1) {
    throw new ConfigError(
      `${source}: its actors ask for different maxConcurrentTasks (${concurrency.join(", ")}). ` +
        "Give them one value, or set the concurrency of the workers (--concurrency) yourself.",
    );
  }
  return {
    source,
    actors: actors.map((a) => a.instance),
    entities,
    handlers,
    types,
    tags: [...new Set(actors.flatMap((a) => a.options.tags ?? []))].sort(),
    maxConcurrentTasks: concurrency[0],
    registerOn(target) {
      for (const a of actors) target.register(a.instance);
      for (const e of entities) target.register(e);
      for (const [type, fn] of handlers) target.registerHandler(type, fn);
    },
  };
}

function unwrapDefault(exported: unknown, source: string): unknown {
  let value = exported;
  if (isModuleNamespace(value)) {
    if (!("default" in value) || value.default === undefined) {
      throw new ConfigError(`${source} has no default export. ${USAGE}`);
    }
    value = value.default;
  }
  // A CommonJS module compiled from ESM: { __esModule: true, default: ... }.
  if (isPlainObject(value) && value["__esModule"] === true && "default" in value) value = value["default"];
  if (value === undefined || value === null) {
    throw new ConfigError(`${source} exports ${String(value)} by default. ${USAGE}`);
  }
  return value;
}

function handlerEntries(map: Record<string, unknown>, where: string): Array<[string, TaskHandler]> {
  const entries = Object.entries(map);
  if (entries.length === 0) throw new ConfigError(`${where} is an empty object. ${USAGE}`);
  return entries.map(([type, fn]) => {
    try {
      assertTaskType(type);
    } catch (error) {
      throw new ConfigError(`${where}: key ${JSON.stringify(type)}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (typeof fn !== "function") {
      throw new ConfigError(
        `${where}: the handler for "${type}" is ${describe(fn)}, not a function. ${USAGE}`,
      );
    }
    return [type, fn as TaskHandler];
  });
}

function construct(cls: abstract new (...args: never[]) => object, where: string): object {
  try {
    return new (cls as new () => object)();
  } catch (error) {
    throw new ConfigError(
      `${where}: could not construct ${cls.name} without arguments: ${(error as Error).message}. ` +
        `Export an instance instead (export default new ${cls.name}(...)).`,
      { cause: error },
    );
  }
}

function isModuleNamespace(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === "Module"
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (typeof value === "function") return `the function ${value.name || "(anonymous)"} (not an @Actor class)`;
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  if (typeof value === "object") return `an instance of ${value.constructor?.name ?? "an unknown class"}`;
  return `${typeof value} ${JSON.stringify(value)}`;
}
