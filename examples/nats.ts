/**
 * The seed's quick start on NATS JetStream: the same code as on the in-memory transport, one URL
 * apart. Needs nats-server with JetStream (`nats-server -js`).
 *   npx tsx examples/nats.ts [nats://127.0.0.1:4222]
 */
import { Coordinator, TaskPriority } from "fastagentic";
import { NatsTransport } from "fastagentic/transports/nats";

const transport = new NatsTransport({
  servers: [process.argv[2] ?? "nats://127.0.0.1:4222"],
  namespace: "example-nats",
  streamsOnClose: "delete", // an example cleans up after itself; an application keeps its streams
});
const coordinator = new Coordinator({
  transport,
  config: { minWorkers: 2, maxWorkers: 10, autoScale: true },
});
coordinator.handler("process_document", async (data: { page_count: number }) => ({
  processed: true,
  pages: data.page_count,
}));
coordinator.handler("generate_summary", async () => ({ summary: "..." }));
await coordinator.start();

console.log(await coordinator.submit("process_document", { document_id: "doc-123", page_count: 10 }));
const task = await coordinator.submitAsync(
  "generate_summary",
  { text: "..." },
  { priority: TaskPriority.HIGH },
);
console.log(await coordinator.waitFor(task.id));
console.log("workers:", (await coordinator.getWorkers()).map((w) => `${w.id} (pid ${w.pid})`).join(", "));

await coordinator.stop({ graceful: true });
await transport.close();
