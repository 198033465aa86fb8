/**
 * The entities one worker holds: the registered types, a host per type, the holder heartbeats
 * that decide which partitions are this worker's (entity-membership.ts), and the outbox shared by
 * its hosts. A Worker creates one when an entity type is registered on it.
 */
import type { StateStore } from "../../transports/state-store.js";
import type { Transport } from "../../transports/transport.js";
import { type Clock, every } from "../clock.js";
import { ConfigError, describeThrown } from "../errors.js";
import { EventBus } from "../events/event-bus.js";
import type { Logger } from "../logger.js";
import type { AnyEntityDefinition } from "./define-entity.js";
import { type EntityBackends, entityBackends } from "./entity-backends.js";
import { EntityHost, type EntityHostStats } from "./entity-host.js";
import { EntityMembership, ownerOf } from "./entity-membership.js";
import { type EntityEventSink, EntityOutbox } from "./entity-outbox.js";

export interface EntityRuntimeOptions {
  holder: string;
  transport: Transport;
  clock: Clock;
  logger: Logger;
  store?: StateStore;
  /** Where machines' emit() events go (the event bus). */
  events?: EntityEventSink;
  /** A holder silent this long loses its partitions to the others (default 10 s). */
  failoverMs?: number;
}

export const DEFAULT_FAILOVER_MS = 10_000;

export class EntityRuntime {
  private readonly defs = new Map<string, AnyEntityDefinition>();
  private readonly hosts = new Map<string, EntityHost>();
  private membership?: EntityMembership;
  private outbox?: EntityOutbox;
  private backends?: EntityBackends;
  private state: "new" | "running" | "stopped" = "new";
  private assigning: Promise<void> = Promise.resolve();
  private stopReconcile?: () => void;
  private reassignQueued = false;

  constructor(private readonly options: EntityRuntimeOptions) {}

  get failoverMs(): number {
    return this.options.failoverMs ?? DEFAULT_FAILOVER_MS;
  }

  /** The entity types registered here. */
  get definitions(): AnyEntityDefinition[] {
    return [...this.defs.values()];
  }

  get stats(): EntityHostStats[] {
    return [...this.hosts.values()].map((h) => h.stats);
  }

  register(def: AnyEntityDefinition, owner: string): void {
    const known = this.defs.get(def.name);
    if (known === def) return;
    if (known) {
      throw new ConfigError(
        `${owner}: an entity type named "${def.name}" is already registered. Each type has one definition; ` +
          "register it once, or give the other a different name.",
      );
    }
    this.defs.set(def.name, def);
    if (this.state === "running") {
      this.addHost(def);
      void this.membership?.announce();
      this.reassign();
    }
  }

  /** Starts holding: the transport must be connected. */
  async start(): Promise<void> {
    if (this.state !== "new" || this.defs.size === 0) return;
    this.state = "running";
    const o = this.options;
    const backends = entityBackends(o.transport, o.store);
    this.backends = backends;
    await backends.store.connect();
    // emit() events go to the given sink, else to the event bus of the transport (if it has an event log).
    const bus = o.transport.eventLog
      ? new EventBus({ transport: o.transport, clock: o.clock, logger: o.logger })
      : undefined;
    this.outbox = new EntityOutbox(o.transport, backends, {
      clock: o.clock,
      logger: o.logger,
      sink: o.events ?? bus,
    });
    for (const def of this.defs.values()) this.addHost(def);
    this.membership = new EntityMembership(o.transport, {
      holder: o.holder,
      boxes: () => [...this.defs.keys()],
      timeoutMs: this.failoverMs,
      clock: o.clock,
      logger: o.logger,
      onChange: () => this.reassign(),
    });
    await this.membership.start();
    this.reassign();
    await this.assigning;
    // Claims that failed (the broker was away) are made again: the assignment is re-applied now and
    // then, not only when the holders change.
    this.stopReconcile = every(o.clock, Math.max(100, Math.floor(this.failoverMs / 2)), () =>
      this.reassign(),
    );
  }

  /** Graceful: running batches finish and every partition is handed over; otherwise at once. */
  async stop(graceful = true): Promise<void> {
    if (this.state !== "running") {
      this.state = "stopped";
      return;
    }
    this.state = "stopped";
    this.stopReconcile?.();
    await this.assigning.catch(() => {});
    await Promise.all([...this.hosts.values()].map((h) => h.stop(graceful)));
    await this.membership?.stop();
    this.outbox?.stop();
    if (this.backends?.ownsStore) await this.backends.store.close().catch(() => {});
  }

  private addHost(def: AnyEntityDefinition): void {
    const o = this.options;
    this.hosts.set(
      def.name,
      new EntityHost(def, this.backends as EntityBackends, {
        holder: o.holder,
        clock: o.clock,
        logger: o.logger,
        outbox: this.outbox as EntityOutbox,
        failoverMs: this.failoverMs,
      }),
    );
  }

  /** Recomputes which partitions are this holder's (coalesced: once per turn). */
  private reassign(): void {
    if (this.reassignQueued || this.state !== "running") return;
    this.reassignQueued = true;
    this.assigning = this.assigning.then(async () => {
      this.reassignQueued = false;
      if (this.state !== "running" || !this.membership) return;
      for (const [name, host] of this.hosts) {
        const holders = this.membership.holdersOf(name);
        const wanted = new Set<number>();
        for (let p = 0; p < host.def.partitions; p++) {
          if (ownerOf(name, p, holders) === this.options.holder) wanted.add(p);
        }
        try {
          await host.assign(wanted);
        } catch (error) {
          this.options.logger.error(
            { entity: name, err: describeThrown(error) },
            "could not take entity partitions",
          );
        }
      }
    });
  }
}
