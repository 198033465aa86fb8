/**
 * The handler table shared by Coordinator, WorkerPool and Worker, with the two forms API.md fixes:
 * `x.handler("t", fn)` and `x.handler("t")` returning a registrar that also works as a method
 * decorator (standard or experimentalDecorators).
 */
import { definedOnly } from "./config.js";
import { decoratorCall, describePlacement } from "./decorators/decorator-call.js";
import { ConfigError } from "./errors.js";
import { assertTaskType } from "./names.js";
import type { SubmitOptions, TaskHandler, TaskPriority } from "./types.js";

/** Registers the function it is given; also a method decorator (standard, or legacy as typed here). */
export interface HandlerRegistrar {
  <F extends TaskHandler>(fn: F, ...rest: unknown[]): F;
  <F extends TaskHandler>(target: object, key: string | symbol, descriptor: TypedPropertyDescriptor<F>): void;
}

/** Per-type submit defaults (e.g. from `@Handler("t", { timeoutMs, retries, priority })`). */
export interface HandlerDefaults {
  timeoutMs?: number;
  retries?: number;
  priority?: TaskPriority;
  tags?: string[];
}

export class HandlerTable {
  private readonly table = new Map<string, TaskHandler>();
  private readonly defaults = new Map<string, HandlerDefaults>();
  private readonly listeners = new Set<(type: string) => void>();

  get types(): string[] {
    return [...this.table.keys()];
  }

  get size(): number {
    return this.table.size;
  }

  get(type: string): TaskHandler | undefined {
    return this.table.get(type);
  }

  has(type: string): boolean {
    return this.table.has(type);
  }

  entries(): IterableIterator<[string, TaskHandler]> {
    return this.table.entries();
  }

  /** Submit options for `type`: its registered defaults, overridden by what the caller gave. */
  submitOptions(type: string, given: SubmitOptions): SubmitOptions {
    const d = this.defaults.get(type);
    return d === undefined ? given : { ...d, ...definedOnly(given) };
  }

  register(type: string, fn: TaskHandler, owner = "handler()", defaults?: HandlerDefaults): void {
    assertTaskType(type);
    if (typeof fn !== "function") {
      throw new ConfigError(`${owner}: the handler for "${type}" must be a function, got ${typeof fn}.`);
    }
    if (this.table.has(type) && this.table.get(type) !== fn) {
      throw new ConfigError(
        `${owner}: a handler for "${type}" is already registered. Each task type has one handler; ` +
          "use a different type name, or register it once.",
      );
    }
    this.table.set(type, fn);
    if (defaults !== undefined) this.defaults.set(type, defaults);
    for (const l of this.listeners) l(type);
  }

  /** Called with each newly registered type (workers start consuming its queue). */
  onRegister(listener: (type: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Implements both forms of `handler()`. */
  handlerApi(type: string, fn: TaskHandler | undefined, owner: string): HandlerRegistrar | TaskHandler {
    if (fn !== undefined) {
      this.register(type, fn, owner);
      return fn;
    }
    assertTaskType(type);
    const registrar = (...args: unknown[]): unknown => {
      const call = decoratorCall(args);
      if (call.form === "standard" || call.form === "legacy") {
        if (call.kind !== "method") {
          throw new ConfigError(
            `${owner}("${type}") decorates methods only, not ${describePlacement(call)}.`,
          );
        }
      }
      // Standard (TC39) method decorator: bound to the first instance constructed.
      if (call.form === "standard") {
        const method = call.value as TaskHandler;
        let bound = false;
        call.addInitializer(function (this: unknown) {
          if (bound) return;
          bound = true;
          table.register(type, method.bind(this), owner);
        });
        return undefined;
      }
      // experimentalDecorators method decorator: (prototype, key, descriptor).
      if (call.form === "legacy") {
        table.register(type, call.descriptor?.value as TaskHandler, owner);
        return call.descriptor;
      }
      table.register(type, args[0] as TaskHandler, owner);
      return args[0];
    };
    const table = this;
    return registrar as HandlerRegistrar;
  }
}
