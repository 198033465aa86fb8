/**
 * A transport as a client sees it, with a tap on its subscriptions: every message that reaches a
 * subscription of the client is also handed to `seen`. Everything else goes straight to the
 * transport (methods bound to it, so its state stays in one object).
 */
import type { FanoutMessage, Subscription, Transport } from "../../transports/transport.js";

export function tapSubscriptions(transport: Transport, seen: (message: FanoutMessage) => void): Transport {
  const subscribe = (subject: string, onMessage: (message: FanoutMessage) => void): Promise<Subscription> =>
    transport.subscribe(subject, (message) => {
      seen(message);
      onMessage(message);
    });
  return new Proxy(transport, {
    get(target, property) {
      if (property === "subscribe") return subscribe;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
