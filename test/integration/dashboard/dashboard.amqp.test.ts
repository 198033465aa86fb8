import { afterAll, beforeAll } from "vitest";
import { AmqpTransport } from "../../../transports/amqp/index.js";
import { PostgresStateStore } from "../../../transports/postgres/index.js";
import { AMQP_URL, POSTGRES_URL } from "../../helpers/brokers.js";
import { amqpAvailable, deleteNamespace } from "../amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "../amqp/broker-lock.js";
import { describeDashboardInBrowser } from "./dashboard-browser.suite.js";

// One RabbitMQ test file at a time: others stop the broker or lower its limits.
let release: (() => Promise<void>) | undefined;
beforeAll(async () => {
  release = await lockBroker();
}, BROKER_LOCK_WAIT_MS + 10_000);
afterAll(async () => {
  await release?.();
});

const table = (namespace: string) => namespace.replaceAll(/[^A-Za-z0-9_]/g, "_").toLowerCase();

describeDashboardInBrowser({
  name: "amqp",
  available: amqpAvailable,
  transport: (namespace) => new AmqpTransport({ url: AMQP_URL, namespace }),
  url: AMQP_URL,
  depthPerPriority: false,
  // RabbitMQ keeps no state: entities keep theirs in PostgreSQL, in a table of this run's own.
  stateStore: (namespace) => `${POSTGRES_URL}?table=${table(namespace)}`,
  cleanup: async (namespace) => {
    await deleteNamespace(namespace);
    const store = new PostgresStateStore({ connectionString: POSTGRES_URL, table: table(namespace) });
    await store.dropTable();
    await store.close();
  },
});
