/**
 * `@Actor(options)` marks a class whose instances can be registered on a Coordinator, WorkerPool or
 * Worker (`register(instance)`). Works with standard decorators and with `experimentalDecorators`.
 */
import "reflect-metadata";
import { ConfigError } from "../errors.js";
import { type ActorOptions, resolveActorOptions } from "./actor-options.js";
import { decoratorCall, describePlacement } from "./decorator-call.js";
import { ACTOR_METADATA, MISUSE_METADATA } from "./metadata-keys.js";
import { appendMetadata } from "./metadata-writer.js";

// biome-ignore lint/suspicious/noExplicitAny: the standard library's own constraint for class decorators.
type AnyClass = abstract new (...args: any) => object;

/** A class decorator in both forms: standard `(class, context)` and legacy `(class)`. */
export interface ActorDecorator {
  <C extends AnyClass>(value: C, context: ClassDecoratorContext<C>): void;
  <C extends AnyClass>(target: C): void;
}

export function Actor(options?: ActorOptions): ActorDecorator {
  const resolved = resolveActorOptions(options, "@Actor() options");
  const decorate = (...args: unknown[]): void => {
    const call = decoratorCall(args);
    if (call.form === "standard" && call.kind === "class") {
      Reflect.defineMetadata(ACTOR_METADATA, resolved, call.value as object);
      return;
    }
    if (call.form === "single" && typeof call.value === "function") {
      Reflect.defineMetadata(ACTOR_METADATA, resolved, call.value);
      return;
    }
    if (call.form === "standard" || call.form === "legacy") {
      appendMetadata(
        MISUSE_METADATA,
        `@Actor() is on ${describePlacement(call)}; it decorates classes only`,
        call,
        "@Actor()",
      );
      return;
    }
    throw new ConfigError(
      "@Actor() decorates classes: put it on a class declaration, `@Actor() class X {}`.",
    );
  };
  return decorate as ActorDecorator;
}
