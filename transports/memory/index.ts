export { InMemoryTransport, type InMemoryTransportOptions } from "./memory.transport.js";
export { PriorityHeap } from "./priority-heap.js";
