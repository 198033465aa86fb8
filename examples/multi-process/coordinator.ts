/**
 * The API-service side: a coordinator with no handlers and no workers of its own (a pure client).
 * It submits to the broker and gets results from worker processes running elsewhere.
 *   FASTAGENTIC_TRANSPORT=nats://127.0.0.1:4222 npx tsx examples/multi-process/coordinator.ts
 */
import { Coordinator, TaskPriority, transportFromUrl } from "fastagentic";

const url = process.env["FASTAGENTIC_TRANSPORT"] ?? "nats://127.0.0.1:4222";
const namespace = process.env["FASTAGENTIC_NAMESPACE"] ?? "multiprocess-example";
const transport = transportFromUrl(url, { namespace });
const coordinator = new Coordinator({
  transport,
  config: { minWorkers: 0, autoScale: false },
});
await coordinator.start();

const tasks = await Promise.all(
  Array.from({ length: 200 }, (_, i) =>
    coordinator.submitAsync(
      "resize_image",
      { image: `img-${i}.png`, width: 320 },
      { priority: i % 10 === 0 ? TaskPriority.HIGH : TaskPriority.NORMAL, retries: 2 },
    ),
  ),
);
const results = await Promise.all(tasks.map((t) => coordinator.waitFor(t.id, { timeoutMs: 60_000 })));
const byProcess = new Map<string, number>();
for (const r of results) {
  const by = (r.result as { by: string } | undefined)?.by ?? r.status;
  byProcess.set(by, (byProcess.get(by) ?? 0) + 1);
}
console.log(
  `${results.filter((r) => r.status === "completed").length}/${results.length} completed, by process:`,
);
for (const [by, n] of byProcess) console.log(`  ${by}: ${n}`);
console.log("workers on the broker:");
for (const w of await coordinator.getWorkers())
  console.log(`  ${w.id} pid ${w.pid} on ${w.hostname}: ${w.status}, ${w.totalCompleted} done`);
await coordinator.stop();
await transport.close(); // the coordinator does not close a transport it was given
