/**
 * Event bus chaos on RabbitMQ (the shared broker, under the cross-process lock; the restart case
 * stops and starts its application): see events-chaos.ts.
 */
import { afterAll, beforeAll } from "vitest";
import { AMQP_URL } from "../helpers/brokers.js";
import {
  amqpAvailable,
  deleteNamespace,
  ensureBrokerRunning,
  rabbitmqctl,
} from "../integration/amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "../integration/amqp/broker-lock.js";
import { describeEventChaos } from "./events-chaos.js";

let release: (() => Promise<void>) | undefined;
beforeAll(async () => {
  if (await amqpAvailable()) release = await lockBroker();
}, BROKER_LOCK_WAIT_MS + 10_000);
afterAll(async () => {
  try {
    if (release) await ensureBrokerRunning();
  } finally {
    await release?.();
  }
}, 120_000);

describeEventChaos({
  name: "RabbitMQ",
  available: async () => release !== undefined,
  url: () => AMQP_URL,
  transportOptions: { publishTimeoutMs: 30_000 },
  restartBroker: async () => {
    await rabbitmqctl("stop_app");
    await rabbitmqctl("start_app");
    await rabbitmqctl("await_startup");
  },
  cleanup: (namespace) => deleteNamespace(namespace),
});
