import { afterAll, beforeAll } from "vitest";
import { AmqpTransport } from "../../../transports/amqp/index.js";
import { AMQP_URL } from "../../helpers/brokers.js";
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

describeDashboardInBrowser({
  name: "amqp",
  available: amqpAvailable,
  transport: (namespace) => new AmqpTransport({ url: AMQP_URL, namespace }),
  url: AMQP_URL,
  cleanup: (namespace) => deleteNamespace(namespace),
});
