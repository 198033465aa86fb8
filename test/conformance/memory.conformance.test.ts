import { InMemoryTransport } from "../../transports/memory/memory.transport.js";
import { describeTransportConformance } from "./transport-conformance.js";

describeTransportConformance({
  name: "memory",
  available: async () => true,
  create: () => new InMemoryTransport(),
  crossQueuePriority: true,
  inboxes: false,
});
