/**
 * The reflect-metadata keys of the class decorators, in one place. The decorators write them;
 * only actor-explorer.ts reads them. Namespaced so they cannot collide with other libraries'.
 */

/** On a class: its ActorOptions (set by `@Actor`). */
export const ACTOR_METADATA = "fastagentic:actor";

/** On a class (legacy decorators) or its `Symbol.metadata` object (standard decorators): HandlerMetadata[]. */
export const HANDLERS_METADATA = "fastagentic:handlers";

/** Same places: misplaced decorators, reported when an instance is registered. */
export const MISUSE_METADATA = "fastagentic:misuse";

/** Same places as the handlers: EventHandlerMetadata[] (set by `@On`). */
export const EVENT_HANDLERS_METADATA = "fastagentic:event-handlers";
/** On a class: its entity name and EntityOptions (set by `@Entity`). */
export const ENTITY_METADATA = "fastagentic:entity";
