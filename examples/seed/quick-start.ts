/** The seed's "Quick Start", translated per API.md. */
import assert from "node:assert/strict";
import { Coordinator, TaskPriority } from "fastagentic";

// Create coordinator
const coordinator = new Coordinator({
  config: { minWorkers: 2, maxWorkers: 10, autoScale: true },
});

// Register task handlers
coordinator.handler("process_document", async (data: { page_count: number }) => {
  // Process the document
  return { processed: true, pages: data.page_count };
});

coordinator.handler("generate_summary", async (_data: { text: string }) => {
  // Generate summary
  return { summary: "..." };
});

// Start the coordinator
await coordinator.start();

// Submit tasks
const result = await coordinator.submit("process_document", { document_id: "doc-123", page_count: 10 });
console.log("process_document →", result);
assert.deepEqual(result, { processed: true, pages: 10 });

// Or submit async and wait later
const task = await coordinator.submitAsync(
  "generate_summary",
  { text: "..." },
  { priority: TaskPriority.HIGH },
);
const summary = await coordinator.waitFor(task.id);
console.log("generate_summary →", summary.status, summary.result);
assert.equal(summary.status, "completed");
assert.deepEqual(summary.result, { summary: "..." });

// Stop gracefully
await coordinator.stop({ graceful: true });
console.log("quick start: ok");
