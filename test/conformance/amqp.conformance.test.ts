import { amqpAvailable, testTransport } from "../integration/amqp/amqp-helpers.js";
import { describeTransportConformance } from "./transport-conformance.js";

describeTransportConformance({
  name: "amqp",
  available: amqpAvailable,
  // Each transport has a namespace of its own and deletes what it declared when it closes.
  create: () => testTransport(),
  cleanup: async (transport) => transport.close(),
  crossQueuePriority: false,
});
