/** The options of `@Actor` and `@Handler`, validated when the decorator factory is called. */
import { validateKeys } from "../config.js";
import { ConfigError } from "../errors.js";
import { checked, intIn, LIMITS, showValue, wholeMsIn } from "../limits.js";
import { normalizeTags } from "../names.js";
import { TaskPriority } from "../types.js";

/** Per-task defaults an actor or handler gives its task types (submit options still win). */
export interface HandlerOptions {
  /** Default timeout of this type's tasks. */
  timeoutMs?: number;
  /** Default number of retries of this type's tasks. */
  retries?: number;
  /** Default priority of this type's tasks. */
  priority?: TaskPriority;
}

export interface ActorOptions extends HandlerOptions {
  /**
   * Tags the workers running this actor must carry (e.g. ["gpu"]). A host not yet started whose
   * config sets no tags adopts them; otherwise its tags must include them (see `register()`).
   */
  tags?: string[];
  /** Tasks one worker runs at once; a host whose config sets no maxConcurrentTasks adopts it. */
  maxConcurrentTasks?: number;
  /** The actor's name in messages and logs (default: the class name). */
  name?: string;
}

const PRIORITIES = new Set<unknown>(Object.values(TaskPriority));
const HANDLER_KEYS = ["timeoutMs", "retries", "priority"] as const;

export function resolveHandlerOptions(input: unknown, what: string): HandlerOptions {
  if (input === undefined) return {};
  validateKeys(what, input, HANDLER_KEYS);
  const o = input as HandlerOptions;
  if (o.timeoutMs !== undefined) checked(`${what}.timeoutMs`, o.timeoutMs, wholeMsIn(1));
  if (o.retries !== undefined) checked(`${what}.retries`, o.retries, intIn(0, LIMITS.retries));
  if (o.priority !== undefined && !PRIORITIES.has(o.priority)) {
    throw new ConfigError(
      `${what}.priority must be a TaskPriority (LOW 0, NORMAL 5, HIGH 10, CRITICAL 20); ` +
        `got ${showValue(o.priority)}.`,
    );
  }
  return pick(o, HANDLER_KEYS);
}

export function resolveActorOptions(input: unknown, what: string): ActorOptions {
  if (input === undefined) return {};
  validateKeys(what, input, [...HANDLER_KEYS, "tags", "maxConcurrentTasks", "name"]);
  const o = input as ActorOptions;
  const resolved: ActorOptions = resolveHandlerOptions(pick(o, HANDLER_KEYS), what);
  if (o.tags !== undefined) {
    try {
      resolved.tags = normalizeTags(o.tags);
    } catch (error) {
      throw new ConfigError(`${what}.tags: ${(error as Error).message}`, { cause: error });
    }
  }
  if (o.maxConcurrentTasks !== undefined) {
    checked(`${what}.maxConcurrentTasks`, o.maxConcurrentTasks, intIn(1, LIMITS.concurrency));
    resolved.maxConcurrentTasks = o.maxConcurrentTasks;
  }
  if (o.name !== undefined) {
    if (typeof o.name !== "string" || o.name.length === 0) {
      throw new ConfigError(`${what}.name must be a non-empty string; got ${showValue(o.name)}.`);
    }
    resolved.name = o.name;
  }
  return resolved;
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
