import { InMemoryTransport } from "../../transports/memory/memory.transport.js";
import { describeDeadLettersConformance } from "./dead-letters-conformance.js";

describeDeadLettersConformance({
  name: "memory",
  available: async () => true,
  create: () => new InMemoryTransport(),
  listsQueues: true,
});
