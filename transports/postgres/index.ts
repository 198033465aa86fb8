/**
 * `fastagentic/transports/postgres`: the PostgreSQL state store for entities (the default with
 * RabbitMQ, selectable anywhere). `stateStoreFromUrl("postgres://…")` loads this module lazily.
 */
import { PostgresStateStore } from "./pg-state-store.js";

export { PostgresStateStore, type PostgresStateStoreOptions } from "./pg-state-store.js";

/** The store of a `postgres://user:pass@host:5432/db?table=name` URL. */
export function postgresStateStoreFromUrl(url: URL): PostgresStateStore {
  const copy = new URL(url.href);
  const table = copy.searchParams.get("table") ?? undefined;
  copy.searchParams.delete("table");
  return new PostgresStateStore({ connectionString: copy.href, table });
}
