/** Machines the entity suites (conformance, chaos) drive. */
import { assign, emit, setup } from "xstate";
import { defineEntity, type EntityOptions } from "../../src/entities/define-entity.js";
import { sendToEntity } from "../../src/entities/entity-actions.js";

export type LogEvent = { type: "APPEND"; n: number } | { type: "BOOM" } | { type: "NOTHING" };

/** Appends each APPEND's n to its log; BOOM throws; NOTHING is never accepted. */
export const logMachine = setup({
  types: { context: {} as { log: number[] }, events: {} as LogEvent },
}).createMachine({
  id: "log",
  initial: "open",
  context: { log: [] },
  states: {
    open: {
      on: {
        APPEND: { actions: assign({ log: ({ context, event }) => [...context.log, event.n] }) },
        BOOM: {
          actions: assign(() => {
            throw new Error("the machine blew up");
          }),
        },
      },
    },
  },
});

export const logEntity = (name: string, options: EntityOptions = {}) =>
  defineEntity(name, logMachine, options);

export type OrderEvent =
  | { type: "ADD_ITEM"; sku: string; price: number }
  | { type: "CHECKOUT" }
  | { type: "PAY"; amount: number };

/** An order: items, checkout, payment; unpaid after `payWithinMs` it cancels itself. */
export function orderMachine(payWithinMs: number) {
  return setup({
    types: { context: {} as { items: string[]; total: number }, events: {} as OrderEvent },
    guards: { paysTotal: ({ context, event }) => event.type === "PAY" && event.amount >= context.total },
  }).createMachine({
    id: "order",
    initial: "open",
    context: { items: [], total: 0 },
    states: {
      open: {
        on: {
          ADD_ITEM: {
            actions: assign({
              items: ({ context, event }) => [...context.items, event.sku],
              total: ({ context, event }) => context.total + event.price,
            }),
          },
          CHECKOUT: "awaitingPayment",
        },
      },
      awaitingPayment: {
        after: { [payWithinMs]: "cancelled" },
        on: { PAY: { guard: "paysTotal", target: "paid" } },
      },
      paid: { type: "final" },
      cancelled: { type: "final" },
    },
  });
}

/** A counter that forwards every HIT to a log entity and emits "counter.hit" on the bus. */
export function relayMachine(target: ReturnType<typeof logEntity>) {
  return setup({
    types: { context: {} as { hits: number }, events: {} as { type: "HIT"; to: string } },
  }).createMachine({
    id: "relay",
    initial: "on",
    context: { hits: 0 },
    states: {
      on: {
        on: {
          HIT: {
            actions: [
              assign({ hits: ({ context }) => context.hits + 1 }),
              sendToEntity<{ hits: number }, { type: "HIT"; to: string }>(
                target,
                ({ event }) => event.to,
                ({ context }) => ({ type: "APPEND", n: context.hits }),
              ),
              emit(({ context }) => ({ type: "counter.hit", hits: context.hits })),
            ],
          },
        },
      },
    },
  });
}
