/**
 * The one place that reads the decorators' metadata: it turns an instance of an `@Actor` class into
 * bound handlers with their submit defaults, and registers them on a host (Worker, WorkerPool, or a
 * Coordinator's pool), applying the actor's `tags` and `maxConcurrentTasks` by these rules:
 *   - tags: the host's workers must carry every actor tag. A host not yet started whose config set
 *     no tags adopts them (several actors: the union); otherwise a missing tag is a ConfigError.
 *   - maxConcurrentTasks: a host whose config set it keeps its own (the deployer decides). A host not
 *     yet started adopts the actor's; two actors asking for different values, or a started host
 *     running another value, is a ConfigError.
 * Lifecycle: `onActorStart()` / `onActorStop()` methods of the instance run when the host starts
 * (before it takes tasks) and stops (after it drained), in registration order and reverse.
 */
import "reflect-metadata";
import { DEFAULT_WORKER_CONFIG, definedOnly } from "../config.js";
import { ConfigError, describeThrown, LifecycleHookError } from "../errors.js";
import type { EventHandlerMetadata } from "../events/on.decorator.js";
import type { HandlerDefaults, HandlerTable } from "../handlers.js";
import { normalizeTags } from "../names.js";
import type { TaskHandler } from "../types.js";
import type { ActorOptions } from "./actor-options.js";
import type { HandlerMetadata } from "./handler.decorator.js";
import {
  ACTOR_METADATA,
  EVENT_HANDLERS_METADATA,
  HANDLERS_METADATA,
  MISUSE_METADATA,
} from "./metadata-keys.js";
import { SYMBOL_METADATA } from "./metadata-writer.js";

/** Optional lifecycle methods of an actor instance. */
export interface ActorLifecycle {
  onActorStart?(): unknown;
  onActorStop?(): unknown;
}

export interface ExploredHandler {
  type: string;
  /** The method, bound to the instance. */
  fn: TaskHandler;
  method: string;
  defaults: HandlerDefaults | undefined;
}

/** An `@On` method: its pattern, subscribe options (group defaults to the actor's name) and bound method. */
export interface ExploredEventHandler {
  pattern: string;
  method: string;
  options: EventHandlerMetadata["options"] & { group: string };
  fn: (...args: never[]) => unknown;
}

export interface ExploredActor {
  name: string;
  instance: object;
  options: ActorOptions;
  handlers: ExploredHandler[];
  events: ExploredEventHandler[];
}

/** What a host hands to registerActor(). */
export interface ActorHost {
  /** The host in messages: "Worker worker-1", "WorkerPool local". */
  owner: string;
  handlers: HandlerTable;
  started: boolean;
  /** The worker settings in effect; adopted values are written here. */
  settings: { tags?: string[]; maxConcurrentTasks?: number };
  /** What the user set explicitly (these win over, or must agree with, an actor's options). */
  given: { tags?: readonly string[]; maxConcurrentTasks?: number } | undefined;
}

interface HostState {
  actors: Array<{ name: string; instance: ActorLifecycle; started: boolean }>;
  concurrencyFrom?: string;
}

const hosts = new WeakMap<object, HostState>();

/** True for a class decorated with `@Actor` (or a subclass of one). */
export function isActorClass(value: unknown): value is abstract new (...args: never[]) => object {
  return typeof value === "function" && Reflect.getMetadata(ACTOR_METADATA, value) !== undefined;
}

/** Reads an instance's metadata into bound handlers; every misuse is a ConfigError naming the fix. */
export function exploreActor(instance: unknown, owner: string): ExploredActor {
  if (typeof instance === "function") {
    const name = (instance as { name?: string }).name || "anonymous class";
    throw new ConfigError(
      `${owner}: got the class ${name} itself; register an instance of it: register(new ${name}()).`,
    );
  }
  if (typeof instance !== "object" || instance === null) {
    throw new ConfigError(
      `${owner} takes an instance of a class decorated with @Actor(), got ${describeValue(instance)}.`,
    );
  }
  const cls = (instance as { constructor?: unknown }).constructor;
  const { className, handlers: entries } = handlerMethodsOf(cls, owner);
  const chain = classChain(cls);
  const options = (chain[0] && Reflect.getMetadata(ACTOR_METADATA, chain[0])) as ActorOptions | undefined;
  const onEntries = chain.flatMap((c) => ownList<EventHandlerMetadata>(EVENT_HANDLERS_METADATA, c));
  if (options === undefined) {
    throw new ConfigError(
      `${owner}: ${className} is not decorated with @Actor(). ` +
        (entries.length > 0
          ? `Add @Actor() to the class (it has @Handler methods for ${entries.map((e) => `"${e.type}"`).join(", ")}).`
          : 'Decorate the class with @Actor() and its task methods with @Handler("task_type").'),
    );
  }
  const name = options.name ?? className;
  if (entries.length === 0 && onEntries.length === 0) {
    throw new ConfigError(
      `${owner}: actor ${name} has no @Handler("task_type") or @On("event.type") methods, so it would ` +
        "handle nothing. Decorate its task methods with @Handler (and its event methods with @On).",
    );
  }
  const handlers = entries.map((entry): ExploredHandler => {
    const method = (instance as Record<string | symbol, unknown>)[entry.method];
    const methodName = String(entry.method);
    if (typeof method !== "function") {
      throw new ConfigError(
        `${owner}: ${name}.${methodName} (the @Handler for "${entry.type}") is not a function on the ` +
          "instance; do not overwrite handler methods with fields.",
      );
    }
    const defaults = definedOnly({
      timeoutMs: entry.options.timeoutMs ?? options.timeoutMs,
      retries: entry.options.retries ?? options.retries,
      priority: entry.options.priority ?? options.priority,
    });
    return {
      type: entry.type,
      fn: (method as TaskHandler).bind(instance),
      method: methodName,
      defaults: Object.keys(defaults).length > 0 ? defaults : undefined,
    };
  });
  const events = onEntries.map((entry): ExploredEventHandler => {
    const method = (instance as Record<string | symbol, unknown>)[entry.method];
    if (typeof method !== "function") {
      throw new ConfigError(
        `${owner}: ${name}.${String(entry.method)} (an @On method) is not a function on the instance.`,
      );
    }
    const group = entry.options.group ?? name.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64);
    return {
      pattern: entry.pattern,
      method: String(entry.method),
      options: { ...entry.options, group },
      fn: (method as (...args: never[]) => unknown).bind(instance),
    };
  });
  return { name, instance, options, handlers, events };
}

/** Registers an actor instance's handlers on a host (see the rules at the top of this file). */
export function registerActor(hostKey: object, instance: unknown, host: ActorHost): ExploredActor {
  const actor = exploreActor(instance, `${host.owner}.register()`);
  const where = `${host.owner}.register(${actor.name})`;
  for (const h of actor.handlers) {
    if (host.handlers.has(h.type)) {
      throw new ConfigError(
        `${where}: a handler for "${h.type}" is already registered on ${host.owner}. Each task type has ` +
          "one handler; register each actor once, and give its methods distinct task types.",
      );
    }
  }
  const lifecycle = actor.instance as ActorLifecycle;
  const hasHooks =
    typeof lifecycle.onActorStart === "function" || typeof lifecycle.onActorStop === "function";
  if (hasHooks && host.started) {
    throw new ConfigError(
      `${where}: ${actor.name} has lifecycle hooks (onActorStart/onActorStop) but ${host.owner} is ` +
        "already started; register it before start().",
    );
  }
  const state = hosts.get(hostKey) ?? { actors: [] };
  const apply = [checkTags(actor, host, where), checkConcurrency(actor, host, state, where)];
  for (const change of apply) change?.();
  for (const h of actor.handlers) host.handlers.register(h.type, h.fn, where, h.defaults);
  if (hasHooks) state.actors.push({ name: actor.name, instance: lifecycle, started: false });
  hosts.set(hostKey, state);
  return actor;
}

/** Runs the onActorStart (in order) or onActorStop (in reverse) hooks of the actors registered on a host. */
export async function runActorHooks(hostKey: object, phase: "start" | "stop", owner: string): Promise<void> {
  const state = hosts.get(hostKey);
  if (!state) return;
  if (phase === "start") {
    for (const a of state.actors) {
      if (a.started) continue;
      try {
        await a.instance.onActorStart?.();
        a.started = true;
      } catch (error) {
        await runActorHooks(hostKey, "stop", owner).catch(() => {});
        throw new LifecycleHookError(
          `${a.name}.onActorStart() failed on ${owner}: ${describeThrown(error)}. ` +
            `${owner} did not start; fix the cause and start a new one.`,
          { cause: error },
        );
      }
    }
    return;
  }
  let first: LifecycleHookError | undefined;
  for (const a of [...state.actors].reverse()) {
    if (!a.started) continue;
    a.started = false;
    try {
      await a.instance.onActorStop?.();
    } catch (error) {
      first ??= new LifecycleHookError(
        `${a.name}.onActorStop() failed on ${owner}: ${describeThrown(error)}. ` +
          "The other actors were stopped; release what it holds by other means.",
        { cause: error },
      );
    }
  }
  if (first) throw first;
}

function checkTags(actor: ExploredActor, host: ActorHost, where: string): (() => void) | undefined {
  const need = actor.options.tags ?? [];
  if (need.length === 0) return undefined;
  const explicit = host.given?.tags !== undefined;
  const have = explicit ? (host.given?.tags ?? []) : (host.settings.tags ?? []);
  const missing = need.filter((t) => !have.includes(t));
  if (missing.length === 0) return undefined;
  if (explicit || host.started) {
    throw new ConfigError(
      `${where}: ${actor.name} requires worker tags [${need.join(", ")}] but ${host.owner} ` +
        `${explicit ? "is configured with" : "already started with"} [${have.join(", ")}]. ` +
        (explicit
          ? `Add ${missing.map((t) => `"${t}"`).join(", ")} to its tags, or remove them from @Actor({ tags }).`
          : "Register actors before start()."),
    );
  }
  return () => {
    host.settings.tags = normalizeTags([...have, ...need]);
  };
}

function checkConcurrency(
  actor: ExploredActor,
  host: ActorHost,
  state: HostState,
  where: string,
): (() => void) | undefined {
  const want = actor.options.maxConcurrentTasks;
  if (want === undefined || host.given?.maxConcurrentTasks !== undefined) return undefined;
  const current = host.settings.maxConcurrentTasks ?? DEFAULT_WORKER_CONFIG.maxConcurrentTasks;
  if (state.concurrencyFrom !== undefined && current !== want) {
    throw new ConfigError(
      `${where}: ${actor.name} asks for maxConcurrentTasks ${want}, but ${state.concurrencyFrom} (registered ` +
        `earlier on ${host.owner}) asked for ${current}. Set maxConcurrentTasks in the config of ` +
        `${host.owner} instead; it wins over the actors'.`,
    );
  }
  if (host.started) {
    if (current === want) return undefined;
    throw new ConfigError(
      `${where}: ${actor.name} asks for maxConcurrentTasks ${want}, but ${host.owner} already runs with ` +
        `${current}. Register actors before start(), or set maxConcurrentTasks in its config.`,
    );
  }
  return () => {
    host.settings.maxConcurrentTasks = want;
    state.concurrencyFrom ??= actor.name;
  };
}

/**
 * The `@Handler` methods of a class and its ancestors (a subclass's handler for a type overrides
 * its parent's); misplaced decorators are a ConfigError. Also read by the `@Entity` class form.
 */
export function handlerMethodsOf(
  cls: unknown,
  owner: string,
): { className: string; handlers: HandlerMetadata[] } {
  const chain = classChain(cls);
  const className = chain[0]?.name || "an anonymous class";
  const misuse = chain.flatMap((c) => ownList<string>(MISUSE_METADATA, c));
  if (misuse.length > 0) {
    throw new ConfigError(
      `${owner}: the decorators of ${className} are misplaced: ${misuse.join("; ")}. Fix the class.`,
    );
  }
  return { className, handlers: collectHandlers(chain, owner) };
}

/** The class and its ancestors, most derived first. */
function classChain(cls: unknown): Array<{ name: string } & object> {
  const chain: Array<{ name: string } & object> = [];
  let c = cls;
  while (typeof c === "function" && c !== Function.prototype && c !== Object) {
    chain.push(c as { name: string } & object);
    c = Object.getPrototypeOf(c);
  }
  return chain;
}

/** The list stored under `key` by one class's own decorators (legacy: on the class; standard: on its metadata). */
function ownList<T>(key: string, cls: object): T[] {
  const out = [...((Reflect.getOwnMetadata(key, cls) as T[] | undefined) ?? [])];
  if (Object.hasOwn(cls, SYMBOL_METADATA)) {
    const metadata = (cls as Record<symbol, unknown>)[SYMBOL_METADATA];
    if (typeof metadata === "object" && metadata !== null) {
      out.push(...((Reflect.getOwnMetadata(key, metadata) as T[] | undefined) ?? []));
    }
  }
  return out;
}

/** Handlers of the whole chain: a subclass's handler for a type overrides its parent's. */
function collectHandlers(chain: object[], owner: string): HandlerMetadata[] {
  const byType = new Map<string, HandlerMetadata>();
  for (const cls of chain) {
    const own = new Map<string, HandlerMetadata>();
    for (const entry of ownList<HandlerMetadata>(HANDLERS_METADATA, cls)) {
      const other = own.get(entry.type);
      if (other) {
        throw new ConfigError(
          `${owner}: ${(cls as { name: string }).name} has two @Handler("${entry.type}") methods, ` +
            `${String(other.method)} and ${String(entry.method)}. One task type has one handler: ` +
            "rename one of the task types, or merge the methods.",
        );
      }
      own.set(entry.type, entry);
      if (!byType.has(entry.type)) byType.set(entry.type, entry);
    }
  }
  return [...byType.values()];
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}
