/**
 * `@On("order.created", { group: "billing", ...subscribe options })` on a method of an `@Actor`
 * class: the method handles matching events, bound to the registered instance. The group defaults
 * to the actor's name. Registered with the actor (Coordinator/WorkerPool/EventBus `register()`),
 * subscribed when its host starts. Misplaced, it is reported as a ConfigError at registration.
 */
import "reflect-metadata";
import { assertEventPattern, assertGroupName } from "../../transports/event-log.js";
import { decoratorCall, describePlacement } from "../decorators/decorator-call.js";
import { EVENT_HANDLERS_METADATA, MISUSE_METADATA } from "../decorators/metadata-keys.js";
import { appendMetadata } from "../decorators/metadata-writer.js";
import { ConfigError } from "../errors.js";
import type { SubscribeOptions } from "./event-bus.js";
import type { BusEvent } from "./event-codec.js";
import type { EventContext } from "./event-subscription.js";

/** What `@On` records for one method (read by actor-explorer.ts). */
export interface EventHandlerMetadata {
  pattern: string;
  method: string | symbol;
  options: SubscribeOptions;
}

/** A method that can handle events: `(event, ctx) => unknown`, its event data typed as the method likes. */
type EventMethod = (event: BusEvent<never>, ctx: EventContext) => unknown;

export interface OnDecorator {
  <This, F extends EventMethod>(value: F, context: ClassMethodDecoratorContext<This, F>): void;
  <F extends EventMethod>(target: object, key: string | symbol, descriptor: TypedPropertyDescriptor<F>): void;
}

export function On(pattern: string, options: SubscribeOptions = {}): OnDecorator {
  const what = `@On(${JSON.stringify(pattern)})`;
  try {
    assertEventPattern(pattern);
    if (options.group !== undefined) assertGroupName(options.group);
  } catch (error) {
    throw new ConfigError(`${what}: ${(error as Error).message}`, { cause: error });
  }
  const decorate = (...args: unknown[]): void => {
    const call = decoratorCall(args);
    if (call.form === "standard" || call.form === "legacy") {
      const isMethod = call.kind === "method" && !call.isStatic;
      const isPrivate = call.form === "standard" && call.isPrivate;
      if (isMethod && !isPrivate && call.name !== undefined) {
        const entry: EventHandlerMetadata = { pattern, method: call.name, options: { ...options } };
        appendMetadata(EVENT_HANDLERS_METADATA, entry, call, what);
        return;
      }
      const problem = isPrivate
        ? `is on the private method "${String(call.name)}"; make it a regular (public) method`
        : `is on ${describePlacement(call)}; it decorates instance methods only`;
      appendMetadata(MISUSE_METADATA, `${what} ${problem}`, call, what);
      return;
    }
    throw new ConfigError(`${what} decorates methods: put it on a method of an @Actor class.`);
  };
  return decorate as OnDecorator;
}
