/**
 * A service reacting to order events: `billing` (an @Actor class with an @On method, group
 * "billing") or `shipping` (a plain subscription, group "shipping"). Run two shipping processes
 * and they share the work; billing and shipping each get every event. (With `ordered: true` one
 * order's events would run one at a time, in order; on RabbitMQ an ordered group has one active
 * member at a time, the others standing by.)
 *   FASTAGENTIC_TRANSPORT=nats://127.0.0.1:4222 npx tsx examples/events/service.ts billing
 */
import { Actor, type BusEvent, EventBus, On, transportFromUrl } from "fastagentic";

interface Order {
  orderId: string;
  total: number;
}

const service = process.argv[2];
if (service !== "billing" && service !== "shipping") {
  console.error("usage: service.ts billing|shipping");
  process.exit(2);
}
const transport = transportFromUrl(process.env["FASTAGENTIC_TRANSPORT"] ?? "nats://127.0.0.1:4222", {
  namespace: process.env["FASTAGENTIC_NAMESPACE"] ?? "events-example",
});
const bus = new EventBus({ transport });
let handled = 0;

@Actor({ name: "billing" })
class Billing {
  @On("order.created", { concurrency: 16 })
  async charge(event: BusEvent<Order>) {
    handled++;
    console.log(`billing ${process.pid} charged ${event.data.orderId} ${event.data.total}`);
  }
}

if (service === "billing") {
  await bus.register(new Billing());
} else {
  await bus.subscribe<Order>(
    "order.*",
    async (event, ctx) => {
      handled++;
      console.log(
        `shipping ${process.pid} ${event.type} ${event.data.orderId} delivery ${ctx.deliveryCount}`,
      );
    },
    { group: "shipping", concurrency: 16 },
  );
}
console.error(`${service} ${process.pid} ready`);

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    await bus.close(); // running handlers finish; the rest goes back to the group
    await transport.close();
    console.error(`${service} ${process.pid} stopped after ${handled} event(s)`);
    process.exit(0);
  });
}
