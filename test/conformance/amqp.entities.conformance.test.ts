import { afterAll, beforeAll } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { AmqpTransport } from "../../transports/amqp/index.js";
import { PostgresStateStore } from "../../transports/postgres/index.js";
import { AMQP_URL, POSTGRES_URL, uniqueNamespace } from "../helpers/brokers.js";
import { amqpAvailable, deleteNamespace } from "../integration/amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "../integration/amqp/broker-lock.js";
import { describeEntitiesConformance } from "./entities-conformance.js";

// One RabbitMQ test file at a time: others stop the broker or lower its limits.
let release: (() => Promise<void>) | undefined;
beforeAll(async () => {
  release = await lockBroker();
}, BROKER_LOCK_WAIT_MS + 10_000);
afterAll(async () => {
  await release?.();
});

// RabbitMQ keeps no state: entities keep theirs in PostgreSQL, a table per test (dropped after it).
const stores = new Map<string, PostgresStateStore>();

describeEntitiesConformance({
  name: "amqp",
  available: amqpAvailable,
  namespace: () => uniqueNamespace("fa-ent-"),
  // Each worker and client its own connection, as separate processes would have.
  transport: (namespace) => new AmqpTransport({ url: AMQP_URL, namespace, logger: silentLogger }),
  entities: (namespace) => {
    let store = stores.get(namespace);
    if (!store) {
      store = new PostgresStateStore({
        connectionString: POSTGRES_URL,
        table: namespace.replaceAll("-", "_"),
      });
      stores.set(namespace, store);
    }
    return { stateStore: store };
  },
  cleanup: async (namespace, transports) => {
    for (const t of transports) await t.close();
    await deleteNamespace(namespace);
    const store = stores.get(namespace);
    stores.delete(namespace);
    await store?.dropTable();
    await store?.close();
  },
});
