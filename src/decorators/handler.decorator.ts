/**
 * `@Handler("task_type", options?)` on a method of an `@Actor` class: the method handles tasks of
 * that type, bound to the registered instance. Misplaced (on a field, getter, static method or
 * class), it is reported as a ConfigError when an instance is registered.
 */
import "reflect-metadata";
import { ConfigError } from "../errors.js";
import { assertTaskType } from "../names.js";
import { type HandlerOptions, resolveHandlerOptions } from "./actor-options.js";
import { decoratorCall, describePlacement } from "./decorator-call.js";
import { HANDLERS_METADATA, MISUSE_METADATA } from "./metadata-keys.js";
import { appendMetadata } from "./metadata-writer.js";

/** What the decorators record for one handler method (read by actor-explorer.ts). */
export interface HandlerMetadata {
  type: string;
  method: string | symbol;
  options: HandlerOptions;
}

/**
 * A method that can handle tasks, `(data, ctx) => result`, or, on an `@Entity` class, events:
 * `(state, event) => nextState`. Its second parameter's type is the method's own.
 */
// biome-ignore lint/suspicious/noExplicitAny: any data and event types the method declares.
type HandlerMethod = (data: any, second: any) => unknown;

/** A method decorator in both forms: standard `(method, context)` and legacy `(proto, key, descriptor)`. */
export interface HandlerDecorator {
  <This, F extends HandlerMethod>(value: F, context: ClassMethodDecoratorContext<This, F>): void;
  <F extends HandlerMethod>(
    target: object,
    key: string | symbol,
    descriptor: TypedPropertyDescriptor<F>,
  ): void;
}

export function Handler(type: string, options?: HandlerOptions): HandlerDecorator {
  const what = `@Handler(${JSON.stringify(type)})`;
  try {
    assertTaskType(type);
  } catch (error) {
    throw new ConfigError(`${what}: ${(error as Error).message}`, { cause: error });
  }
  const resolved = resolveHandlerOptions(options, `${what} options`);
  const decorate = (...args: unknown[]): void => {
    const call = decoratorCall(args);
    if (call.form === "standard" || call.form === "legacy") {
      const isMethod = call.kind === "method" && !call.isStatic;
      const isPrivate = call.form === "standard" && call.isPrivate;
      if (isMethod && !isPrivate && call.name !== undefined) {
        const entry: HandlerMetadata = { type, method: call.name, options: resolved };
        appendMetadata(HANDLERS_METADATA, entry, call, what);
        return;
      }
      const problem = isPrivate
        ? `is on the private method "${String(call.name)}"; make it a regular (public) method`
        : `is on ${describePlacement(call)}; it decorates instance methods only (the instance registered ` +
          "is what the handler runs on)";
      appendMetadata(MISUSE_METADATA, `${what} ${problem}`, call, what);
      return;
    }
    if (call.form === "single" && typeof call.value === "function") {
      appendMetadata(
        MISUSE_METADATA,
        `${what} is on the class itself; put it on a method of the class`,
        { form: "class", target: call.value },
        what,
      );
      return;
    }
    throw new ConfigError(`${what} decorates methods: put it on a method of an @Actor class.`);
  };
  return decorate as HandlerDecorator;
}
