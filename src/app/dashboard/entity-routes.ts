/**
 * The dashboard's entities panel over HTTP: look an entity up by type name and id, and read its
 * stored snapshot (state value, context, status, version) from the coordinator's state store.
 *   GET <path>/api/entities               { types }: the entity types this page knows by name
 *   GET <path>/api/entities/:type?id=     one snapshot (404 when that entity has none yet)
 * The types listed are the coordinator's own workers' and those given to mountDashboard
 * (`entities`); any other type name can be typed in, as worker processes may hold types this
 * process never registered.
 */
import type { FastifyInstance } from "fastify";
import { assertStateAddress } from "../../../transports/state-store.js";
import type { Coordinator } from "../../coordinator.js";
import { entityDefinitionOf } from "../../entities/entity.decorator.js";
import { ConfigError, HttpError, ValidationError } from "../../errors.js";
import { readQuery } from "../dead-letter-routes.js";

/** The type names of `entities` (definitions from defineEntity() or @Entity classes). */
export function entityTypeNames(entities: readonly unknown[] | undefined): string[] {
  return (entities ?? []).map((e, i) => {
    const def = entityDefinitionOf(e, `mountDashboard() entities[${i}]`);
    if (!def) {
      throw new ConfigError(
        `mountDashboard(): entities[${i}] is not an entity type: give definitions from defineEntity() or @Entity classes.`,
      );
    }
    return def.name;
  });
}

export async function entityRoutes(
  fastify: FastifyInstance,
  coordinator: Coordinator,
  named: readonly string[],
): Promise<void> {
  fastify.get("/entities", async (request) => {
    readQuery(request.query, []);
    const types = new Set([...coordinator.entityDefinitions.map((d) => d.name), ...named]);
    return { types: [...types].sort() };
  });

  fastify.get("/entities/:type", async (request) => {
    const { type } = request.params as { type: string };
    const { id } = readQuery(request.query, ["id"]);
    if (id === undefined) throw new ValidationError("Give the entity id to look up as ?id=.");
    assertStateAddress(type, id);
    const snapshot = await coordinator.readEntity(type, id);
    if (snapshot === null) {
      throw new HttpError(
        404,
        `No ${type} entity with id ${JSON.stringify(id)} has state yet (it has never received an event, or the type name is not the one it was defined with).`,
        { code: "FA_NOT_FOUND" },
      );
    }
    return { type, ...snapshot };
  });
}
