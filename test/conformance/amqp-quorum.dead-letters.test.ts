import { afterAll, beforeAll } from "vitest";
import { amqpAvailable, testTransport } from "../integration/amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "../integration/amqp/broker-lock.js";
import { describeDeadLettersConformance } from "./dead-letters-conformance.js";

// One RabbitMQ test file at a time: others stop the broker or lower its limits.
let release: (() => Promise<void>) | undefined;
beforeAll(async () => {
  release = await lockBroker();
}, BROKER_LOCK_WAIT_MS + 10_000);
afterAll(async () => {
  await release?.();
});

describeDeadLettersConformance({
  name: "amqp (quorum queues)",
  available: amqpAvailable,
  // Each transport has a namespace of its own and deletes what it declared when it closes.
  create: () => testTransport({ queueType: "quorum" }),
  cleanup: async (transport) => transport.close(),
  listsQueues: false,
});
