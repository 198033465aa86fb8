import { InMemoryTransport } from "../../transports/memory/memory.transport.js";
import { describeEntitiesConformance } from "./entities-conformance.js";

// One process: every worker and client of a namespace shares its transport.
const byNamespace = new Map<string, InMemoryTransport>();
let seq = 0;

describeEntitiesConformance({
  name: "memory",
  available: async () => true,
  namespace: () => `mem${++seq}`,
  transport: (namespace) => {
    let t = byNamespace.get(namespace);
    if (!t) {
      t = new InMemoryTransport();
      byNamespace.set(namespace, t);
    }
    return t;
  },
  cleanup: async (namespace) => {
    byNamespace.delete(namespace);
  },
});
