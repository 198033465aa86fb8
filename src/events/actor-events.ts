/**
 * The `@On` methods of the actors registered on a host (WorkerPool, hence Coordinator): subscribed
 * on the host's transport when it starts, closed (running handlers finish) when it stops.
 */
import type { Transport } from "../../transports/transport.js";
import type { Clock } from "../clock.js";
import type { ExploredEventHandler } from "../decorators/actor-explorer.js";
import type { Logger } from "../logger.js";
import { EventBus, type EventSubscription } from "./event-bus.js";
import type { EventHandler } from "./event-subscription.js";

export class ActorEvents {
  private readonly handlers: ExploredEventHandler[] = [];
  private bus?: EventBus;
  private subscriptions: EventSubscription[] = [];

  add(handlers: readonly ExploredEventHandler[]): void {
    this.handlers.push(...handlers);
  }

  get size(): number {
    return this.handlers.length;
  }

  async start(transport: Transport, clock: Clock, logger: Logger): Promise<void> {
    if (this.handlers.length === 0 || this.bus) return;
    const bus = new EventBus({ transport, clock, logger });
    this.bus = bus;
    for (const h of this.handlers) {
      this.subscriptions.push(await subscribeHandler(bus, h));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.subscriptions.splice(0).map((s) => s.close()));
    await this.bus?.close();
    this.bus = undefined;
  }
}

export function subscribeHandler(bus: EventBus, h: ExploredEventHandler): Promise<EventSubscription> {
  return bus.subscribe(h.pattern, h.fn as EventHandler, h.options);
}
