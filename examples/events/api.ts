/**
 * The API side: publishes `order.created` then `order.paid` for ORDERS orders (keyed by order id,
 * so ordered groups see each order's events in this order). Each publish resolves once the broker
 * stored the event.
 *   FASTAGENTIC_TRANSPORT=nats://127.0.0.1:4222 npx tsx examples/events/api.ts
 */
import { EventBus, transportFromUrl } from "fastagentic";

const orders = Number(process.env["ORDERS"] ?? 50);
const transport = transportFromUrl(process.env["FASTAGENTIC_TRANSPORT"] ?? "nats://127.0.0.1:4222", {
  namespace: process.env["FASTAGENTIC_NAMESPACE"] ?? "events-example",
});
const bus = new EventBus({ transport });
const sends: Promise<unknown>[] = [];
for (let i = 1; i <= orders; i++) {
  const orderId = `o-${i}`;
  const order = { orderId, total: 10 * i };
  // Each order's two events in sequence; different orders in parallel.
  sends.push(
    bus
      .publish("order.created", order, { key: orderId, id: `${orderId}-created` })
      .then(() => bus.publish("order.paid", order, { key: orderId, id: `${orderId}-paid` })),
  );
}
await Promise.all(sends);
console.log(`api published ${orders * 2} events for ${orders} orders`);
await bus.close();
await transport.close();
