import { PostgresStateStore } from "../../transports/postgres/index.js";
import type { StateStore } from "../../transports/state-store.js";
import { brokerAvailable, POSTGRES_URL, uniqueNamespace } from "../helpers/brokers.js";
import { describeStateStoreConformance } from "./state-store-conformance.js";

const url = new URL(POSTGRES_URL);

describeStateStoreConformance({
  name: "postgres",
  available: () => brokerAvailable("PostgreSQL", url.hostname, Number(url.port || 5432)),
  create: () =>
    new PostgresStateStore({
      connectionString: POSTGRES_URL,
      table: uniqueNamespace("conf_"),
      maxValueBytes: 64 * 1024,
    }),
  peer: (store) =>
    new PostgresStateStore({ connectionString: POSTGRES_URL, table: (store as PostgresStateStore).table }),
  // Every table a test creates is dropped after it.
  cleanup: async (store: StateStore) => (store as PostgresStateStore).dropTable(),
});
