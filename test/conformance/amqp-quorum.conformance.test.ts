import { amqpAvailable, testTransport } from "../integration/amqp/amqp-helpers.js";
import { holdBrokerLockForFile } from "../integration/amqp/broker-lock.js";
import { describeTransportConformance } from "./transport-conformance.js";

// One RabbitMQ test file at a time: others stop the broker or lower its limits.
holdBrokerLockForFile();

// Quorum queues: one queue per priority level, ordered by the consumer (amqp-level-consumer.ts).
describeTransportConformance({
  name: "amqp (quorum queues)",
  available: amqpAvailable,
  create: () => testTransport({ queueType: "quorum" }),
  cleanup: async (transport) => transport.close(),
  // The consumer orders every level queue of all its queues together: priority holds across them.
  crossQueuePriority: true,
  inboxes: true,
});
