/**
 * A member of an event group in a process of its own, for the chaos tests: subscribes with the
 * settings in its environment and appends one ledger line per handled event
 * (`<id> <key> <n> <deliveryCount> <pid>`), synchronously, before the handler returns (so a line
 * means "handled"; the ack follows). Says "ready" on stderr once subscribed.
 */
import { appendFileSync } from "node:fs";
import { EventBus, silentLogger, transportFromUrl } from "fastagentic";

const env = (name: string) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`event-member: ${name} is not set`);
  return value;
};
const transport = transportFromUrl(env("EV_URL"), {
  namespace: env("EV_NAMESPACE"),
  ...(JSON.parse(process.env["EV_TRANSPORT_OPTIONS"] ?? "{}") as Record<string, unknown>),
});
const bus = new EventBus({ transport, logger: silentLogger });
const ledger = env("EV_LEDGER");
await bus.subscribe(
  env("EV_PATTERN"),
  async (event, ctx) => {
    const data = event.data as { n: number };
    // A little work, so that several events are in flight when the process dies.
    await new Promise((resolve) => setTimeout(resolve, 1));
    appendFileSync(ledger, `${event.id} ${event.key ?? "-"} ${data.n} ${ctx.deliveryCount} ${process.pid}\n`);
  },
  { group: env("EV_GROUP"), ordered: process.env["EV_ORDERED"] === "1", concurrency: 8 },
);
process.stderr.write(`event-member ${process.pid} ready\n`);
process.once("SIGTERM", async () => {
  await bus.close();
  await transport.close();
  process.exit(0);
});
