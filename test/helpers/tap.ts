/**
 * A transport as a test wants to see it: some methods replaced, everything else going straight to
 * the transport (methods bound to it, so its state stays in one object).
 */
import type { FanoutMessage, Subscription, Transport } from "../../transports/transport.js";

/** `transport` with the methods in `overrides` in place of its own. */
export function overriding(transport: Transport, overrides: Partial<Transport>): Transport {
  return new Proxy(transport, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof Transport];
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A client's transport with a tap: every message that reaches one of its subscriptions is also handed to `seen`. */
export function tapSubscriptions(transport: Transport, seen: (message: FanoutMessage) => void): Transport {
  return overriding(transport, {
    subscribe: (subject: string, onMessage: (message: FanoutMessage) => void): Promise<Subscription> =>
      transport.subscribe(subject, (message) => {
        seen(message);
        onMessage(message);
      }),
  });
}
