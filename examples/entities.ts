/**
 * Entities: an order as a durable XState actor addressed by its id. Items are added, the order is
 * checked out and paid; an order left unpaid past its pay window cancels itself (a durable timer:
 * it fires even if the worker holding the order restarts meanwhile). Paid and cancelled orders
 * emit an event on the event bus.
 *
 *   npx tsx examples/entities.ts                              in memory
 *   npx tsx examples/entities.ts nats://127.0.0.1:4222        state in JetStream KV
 *   FASTAGENTIC_STATE_STORE=postgres://postgres@127.0.0.1:5432/test \
 *     npx tsx examples/entities.ts amqp://guest:guest@127.0.0.1:5672     state in PostgreSQL
 *
 * EXAMPLE_NAMESPACE picks the broker namespace (default "entities-example").
 */
import {
  Coordinator,
  defineEntity,
  EntityRejectedError,
  EventBus,
  stateStoreFromUrl,
  transportFromUrl,
} from "fastagentic";
import { assign, emit, setup } from "xstate";

const PAY_WINDOW_MS = Number(process.env["PAY_WINDOW_MS"] ?? 1500);

type OrderEvent =
  | { type: "ADD_ITEM"; sku: string; price: number }
  | { type: "CHECKOUT" }
  | { type: "PAY"; amount: number };

const orderMachine = setup({
  types: {
    context: {} as { items: Array<{ sku: string; price: number }>; total: number },
    events: {} as OrderEvent,
  },
  guards: {
    hasItems: ({ context }) => context.items.length > 0,
    paysTotal: ({ context, event }) => event.type === "PAY" && event.amount >= context.total,
  },
  delays: { PAY_WINDOW: () => PAY_WINDOW_MS },
}).createMachine({
  id: "order",
  initial: "open",
  context: { items: [], total: 0 },
  states: {
    open: {
      on: {
        ADD_ITEM: {
          actions: assign({
            items: ({ context, event }) => [...context.items, { sku: event.sku, price: event.price }],
            total: ({ context, event }) => context.total + event.price,
          }),
        },
        CHECKOUT: { guard: "hasItems", target: "awaitingPayment" },
      },
    },
    awaitingPayment: {
      after: { PAY_WINDOW: "cancelled" },
      on: { PAY: { guard: "paysTotal", target: "paid" } },
    },
    paid: { type: "final", entry: emit(({ context }) => ({ type: "order.paid", total: context.total })) },
    cancelled: { type: "final", entry: emit({ type: "order.cancelled" }) },
  },
});

export const Order = defineEntity("order", orderMachine, { partitions: 8 });

const url = process.argv[2] ?? process.env["FASTAGENTIC_TRANSPORT"] ?? "memory://";
const transport = transportFromUrl(url, {
  namespace: process.env["EXAMPLE_NAMESPACE"] ?? "entities-example",
});
const stateUrl = process.env["FASTAGENTIC_STATE_STORE"];
const stateStore = stateUrl ? stateStoreFromUrl(stateUrl) : undefined; // default: the transport's own
const coordinator = new Coordinator({
  transport,
  config: { minWorkers: 2, maxWorkers: 2, autoScale: false },
  entities: { stateStore },
});
coordinator.register(Order);
await coordinator.start();

// The bus carries what the orders emit, where the transport has an event log.
const bus = transport.eventLog ? new EventBus({ transport }) : undefined;
const subscription = await bus?.subscribe(
  "order.*",
  async (event) => {
    console.log(`  bus: ${event.type} ${JSON.stringify(event.data)} (key ${event.key})`);
  },
  { group: "example-billing", from: "new" },
);

const run = Date.now().toString(36);
const paid = coordinator.entity(Order, `o-${run}-1`);
await paid.send({ type: "ADD_ITEM", sku: "book", price: 12 });
await paid.send({ type: "ADD_ITEM", sku: "pen", price: 3 });
const checkedOut = await paid.ask({ type: "CHECKOUT" });
console.log(
  `${checkedOut.id}: ${checkedOut.value}, total ${checkedOut.context.total}, version ${checkedOut.version}`,
);
const done = await paid.ask({ type: "PAY", amount: 15 });
console.log(`${done.id}: ${done.value} (status ${done.status})`);

try {
  await paid.ask({ type: "ADD_ITEM", sku: "late", price: 1 });
} catch (error) {
  if (!(error instanceof EntityRejectedError)) throw error;
  console.log(
    `${paid.id}: rejected ${error.eventType} (${error.code}): the order is ${JSON.stringify(error.state)}`,
  );
}

const unpaid = coordinator.entity(Order, `o-${run}-2`);
await unpaid.send({ type: "ADD_ITEM", sku: "lamp", price: 40 });
await unpaid.ask({ type: "CHECKOUT" });
console.log(`${unpaid.id}: awaiting payment for ${PAY_WINDOW_MS} ms…`);
for (let waited = 0; (await unpaid.get())?.value !== "cancelled"; waited += 100) {
  if (waited > PAY_WINDOW_MS + 30_000) throw new Error("the pay window did not close");
  await new Promise((resolve) => setTimeout(resolve, 100));
}
console.log(`${unpaid.id}: cancelled after the pay window`);
console.log(`stored: ${JSON.stringify(await unpaid.get())}`);

await new Promise((resolve) => setTimeout(resolve, 300)); // the bus events are on their way
await subscription?.close();
await coordinator.stop();
await stateStore?.close();
await transport.close();
