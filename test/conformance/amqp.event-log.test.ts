import { amqpAvailable, testTransport } from "../integration/amqp/amqp-helpers.js";
import { holdBrokerLockForFile } from "../integration/amqp/broker-lock.js";
import { describeEventLogConformance } from "./event-log-conformance.js";

// One RabbitMQ test file at a time: others stop the broker or lower its limits.
holdBrokerLockForFile();

describeEventLogConformance({
  name: "amqp",
  available: amqpAvailable,
  // Each transport has a namespace of its own and deletes what it declared when it closes.
  create: () => testTransport(),
});
