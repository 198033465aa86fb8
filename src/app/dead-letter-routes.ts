/**
 * The dead letters of a coordinator's queue over HTTP (mounted with the REST surface):
 *   GET    /dead-letters?type=&limit=&cursor=   a page, with counts       GET /dead-letters/:id  one
 *   POST   /dead-letters/:id/retry              re-enqueue (original id, attempts reset)
 *   POST   /dead-letters/retry?type=            retry all (of a type)
 *   DELETE /dead-letters/:id                    delete one      DELETE /dead-letters?type=  purge
 * Every answer is JSON; every refusal `{ error: { code, message } }` (400 bad query, 404 gone).
 */
import type { FastifyInstance } from "fastify";
import type { DeadLetterApi } from "../dead-letters/dead-letter-api.js";
import { UnknownDeadLetterError, ValidationError } from "../errors.js";

const idSchema = {
  params: { type: "object", required: ["id"], properties: { id: { type: "string", minLength: 1 } } },
};

export async function deadLetterRoutes(fastify: FastifyInstance, api: DeadLetterApi): Promise<void> {
  fastify.get("/dead-letters", async (request) => {
    const query = readQuery(request.query, ["type", "limit", "cursor"]);
    const [page, counts] = await Promise.all([
      api.list({
        ...(query["type"] ? { type: query["type"] } : {}),
        ...(query["limit"] ? { limit: intOf(query["limit"], "limit") } : {}),
        ...(query["cursor"] ? { cursor: query["cursor"] } : {}),
      }),
      api.count(),
    ]);
    return { queue: api.queue, total: counts.total, byQueue: counts.byQueue, ...page };
  });

  fastify.get("/dead-letters/:id", { schema: idSchema }, async (request) => {
    const { id } = request.params as { id: string };
    const letter = await api.get(id);
    if (!letter) throw new UnknownDeadLetterError(id);
    return letter;
  });

  fastify.post("/dead-letters/:id/retry", { schema: idSchema }, async (request) => {
    const { id } = request.params as { id: string };
    readQuery(request.query, []);
    return { retried: true, id, ...(await api.retry(id)) };
  });

  fastify.post("/dead-letters/retry", async (request) => {
    const query = readQuery(request.query, ["type"]);
    return api.retryAll(query["type"] ? { type: query["type"] } : {});
  });

  fastify.delete("/dead-letters/:id", { schema: idSchema }, async (request) => {
    const { id } = request.params as { id: string };
    readQuery(request.query, []);
    await api.delete(id);
    return { deleted: true, id };
  });

  fastify.delete("/dead-letters", async (request) => {
    const query = readQuery(request.query, ["type"]);
    return api.purge(query["type"] ? { type: query["type"] } : {});
  });
}

/** The query string as single strings, refusing unknown keys and repeated ones. */
export function readQuery(query: unknown, allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    if (!allowed.includes(key)) {
      throw new ValidationError(
        `Unknown query parameter "${key.slice(0, 64)}"` +
          (allowed.length > 0 ? `; this route takes ${allowed.join(", ")}.` : "; this route takes none."),
      );
    }
    if (typeof value !== "string") throw new ValidationError(`Give the query parameter "${key}" once.`);
    out[key] = value;
  }
  return out;
}

export function intOf(text: string, what: string): number {
  if (!/^[0-9]{1,9}$/.test(text))
    throw new ValidationError(`${what} must be a whole number, got "${text.slice(0, 32)}".`);
  return Number(text);
}
