import { InMemoryTransport } from "../../transports/memory/memory.transport.js";
import { describeEventLogConformance } from "./event-log-conformance.js";

describeEventLogConformance({
  name: "memory",
  available: async () => true,
  create: () => new InMemoryTransport(),
});
