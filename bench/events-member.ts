/**
 * One event group's member in a process of its own, for the fan-out measure of the event bench
 * (bench/harness/events-bench.ts): subscribes, counts what reaches its handler, reports the count
 * over IPC (at most every 20 ms, and once the count stops moving).
 */
import { EventBus, silentLogger, transportFromUrl } from "fastagentic";

const { url, namespace, group } = JSON.parse(process.env["BENCH_EVENTS_MEMBER"] ?? "{}") as {
  url: string;
  namespace: string;
  group: string;
};
const transport = transportFromUrl(url, { namespace });
const bus = new EventBus({ transport, logger: silentLogger });
let count = 0;
let reported = 0;
const report = () => {
  if (count !== reported) {
    reported = count;
    process.send?.({ type: "count", count });
  }
};
setInterval(report, 20);
await bus.subscribe(
  "bench.order",
  () => {
    count++;
  },
  { group, concurrency: 256, timeoutMs: 0 },
);
process.send?.({ type: "ready" });
process.on("disconnect", async () => {
  await bus.close();
  await transport.close();
  process.exit(0);
});
