import { MemoryStateStore } from "../../transports/memory/memory-state-store.js";
import { describeStateStoreConformance } from "./state-store-conformance.js";

describeStateStoreConformance({
  name: "memory",
  available: async () => true,
  create: () => new MemoryStateStore({ maxValueBytes: 64 * 1024 }),
  // One process: the other clients of an in-memory store are the same object.
  peer: (store) => store,
});
