/**
 * A reference to one entity: `coordinator.entity(Order, "o-123")`. Nothing runs until an event is
 * sent; the entity lives on whichever worker holds its partition, its state in the store.
 */
import type { EntityDefinition } from "./define-entity.js";
import type { AskOptions, EntityClient, SendOptions } from "./entity-client.js";
import type { EntityEvent, EntitySnapshot } from "./entity-logic.js";

export class EntityRef<TEvent extends EntityEvent = EntityEvent, TContext = unknown, TValue = unknown> {
  constructor(
    private readonly client: EntityClient,
    readonly definition: EntityDefinition<TEvent, TContext, TValue>,
    readonly id: string,
  ) {}

  /** Tell: resolves once the event is durably enqueued (with the event's id). */
  send(event: TEvent, options?: SendOptions): Promise<string> {
    return this.client.send(this.definition, this.id, event, options);
  }

  /**
   * Resolves with the snapshot after the event was applied. Rejects with EntityRejectedError (no
   * transition took it), EntityEventError (the machine threw), EntitySnapshotError (the stored
   * state cannot be restored) or EntityAskTimeoutError.
   */
  ask(event: TEvent, options?: AskOptions): Promise<EntitySnapshot<TContext, TValue>> {
    return this.client.ask(this.definition, this.id, event, options) as Promise<
      EntitySnapshot<TContext, TValue>
    >;
  }

  /** The stored snapshot, or null if the entity never received an event. */
  get(): Promise<EntitySnapshot<TContext, TValue> | null> {
    return this.client.get(this.definition, this.id) as Promise<EntitySnapshot<TContext, TValue> | null>;
  }
}
