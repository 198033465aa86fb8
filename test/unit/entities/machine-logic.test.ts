/**
 * MachineLogic drives machines like XState's pure transition(), with one inert actor per type
 * instead of one per step: the snapshots and actions must be the same as transition()'s own.
 */

import { describe, expect, it } from "vitest";
import { assign, emit, fromPromise, initialTransition, raise, setup, transition } from "xstate";
import { defineEntity } from "../../../src/entities/define-entity.js";
import { MachineLogic } from "../../../src/entities/machine-logic.js";
import { ConfigError } from "../../../src/errors.js";
import { orderMachine } from "../../conformance/entity-machines.js";

const machine = orderMachine(5000);
const logic = new MachineLogic(machine, "order", 4);

describe("MachineLogic", () => {
  it("gives the snapshots XState's transition() gives, step by step", () => {
    const events = [
      { type: "ADD_ITEM", sku: "a", price: 3 },
      { type: "ADD_ITEM", sku: "b", price: 4 },
      { type: "CHECKOUT" },
      { type: "PAY", amount: 7 },
    ] as const;
    let ours = logic.initial("o-1").state;
    let theirs = initialTransition(machine)[0];
    for (const event of events) {
      const step = logic.apply(ours, { ...event }, "o-1");
      if (step.kind !== "applied") throw new Error(`expected applied, got ${step.kind}`);
      ours = step.state;
      theirs = transition(machine, theirs, { ...event })[0];
      expect(machine.getPersistedSnapshot(ours as never)).toEqual(machine.getPersistedSnapshot(theirs));
    }
    expect(logic.view(ours)).toMatchObject({ value: "paid", status: "done", context: { total: 7 } });
  });

  it("turns `after` into a durable timer and leaving the state into its cancellation", () => {
    const open = logic.initial("o-2").state;
    const checkout = logic.apply(open, { type: "CHECKOUT" }, "o-2");
    expect(checkout.kind === "applied" && checkout.effects).toEqual([
      {
        k: "timer",
        id: "xstate.after.5000.order.awaitingPayment",
        event: { type: "xstate.after.5000.order.awaitingPayment" },
        delayMs: 5000,
      },
    ]);
    if (checkout.kind !== "applied") return;
    const pay = logic.apply(checkout.state, { type: "PAY", amount: 0 }, "o-2");
    expect(pay.kind === "applied" && pay.effects).toEqual([
      { k: "cancel", id: "xstate.after.5000.order.awaitingPayment" },
    ]);
    const fired = logic.apply(checkout.state, { type: "xstate.after.5000.order.awaitingPayment" }, "o-2");
    expect(fired.kind === "applied" && logic.view(fired.state).value).toBe("cancelled");
  });

  it("rejects an event no transition takes (or whose guard fails), fails on a throw", () => {
    const open = logic.initial("o-3").state;
    expect(logic.apply(open, { type: "PAY", amount: 1 }, "o-3")).toEqual({ kind: "rejected", value: "open" });
    const item = logic.apply(open, { type: "ADD_ITEM", sku: "x", price: 9 }, "o-3");
    if (item.kind !== "applied") throw new Error("add item");
    const awaiting = logic.apply(item.state, { type: "CHECKOUT" }, "o-3");
    if (awaiting.kind !== "applied") throw new Error("checkout");
    expect(logic.apply(awaiting.state, { type: "PAY", amount: 8 }, "o-3")).toEqual({
      kind: "rejected",
      value: "awaitingPayment",
    });
    const throwing = setup({}).createMachine({
      initial: "a",
      states: {
        a: {
          on: {
            GO: {
              actions: assign(() => {
                throw new Error("boom");
              }),
            },
          },
        },
      },
    });
    const t = new MachineLogic(throwing, "t", 1);
    expect(t.apply(t.initial("x").state, { type: "GO" }, "x")).toEqual({ kind: "failed", reason: "boom" });
  });

  it("collects emit() and delayed raises, and refuses machines that invoke actors", () => {
    const m = setup({}).createMachine({
      initial: "a",
      states: {
        a: {
          on: {
            GO: { actions: [emit({ type: "went" }), raise({ type: "LATER" }, { delay: 50, id: "later" })] },
          },
        },
      },
    });
    const l = new MachineLogic(m, "m", 1);
    const step = l.apply(l.initial("x").state, { type: "GO" }, "x");
    expect(step.kind === "applied" && step.effects).toEqual([
      { k: "emit", event: { type: "went" } },
      { k: "timer", id: "later", event: { type: "LATER" }, delayMs: 50 },
    ]);
    const invoking = setup({ actors: { work: fromPromise(async () => 1) } }).createMachine({
      initial: "a",
      states: { a: { invoke: { src: "work" } } },
    });
    expect(() => defineEntity("inv", invoking)).toThrow(ConfigError);
  });

  it("round-trips the persisted snapshot, and refuses one of a state the machine does not have", () => {
    const awaiting = logic.apply(logic.initial("o-4").state, { type: "CHECKOUT" }, "o-4");
    if (awaiting.kind !== "applied") throw new Error("checkout");
    const persisted = logic.persist(awaiting.state);
    expect(logic.view(logic.restore(JSON.parse(JSON.stringify(persisted))))).toEqual(
      logic.view(awaiting.state),
    );
    expect(() => logic.restore({ ...(persisted as object), value: "gone" })).toThrow(/gone/);
  });

  it("persists what XState's getPersistedSnapshot gives: history states, final output, errors", () => {
    const m = setup({
      types: {
        context: {} as { n: number },
        events: {} as { type: "GO" } | { type: "BACK" } | { type: "END" },
      },
    }).createMachine({
      initial: "a",
      context: { n: 0 },
      states: {
        a: {
          initial: "x",
          states: { x: { on: { GO: "y" } }, y: {}, hist: { type: "history", history: "deep" } },
          on: { END: "done", BACK: "b" },
        },
        b: { on: { GO: "a.hist" } },
        done: { type: "final" },
      },
      output: ({ context }) => ({ total: context.n }),
    });
    const l = new MachineLogic(m, "hist", 1);
    let state = l.initial("h").state;
    for (const type of ["GO", "BACK", "GO", "END"] as const) {
      expect(l.persist(state)).toEqual(m.getPersistedSnapshot(state as never));
      const step = l.apply(state, { type }, "h");
      if (step.kind !== "applied") throw new Error(`${type}: ${step.kind}`);
      state = step.state;
    }
    expect(l.persist(state)).toEqual(m.getPersistedSnapshot(state as never));
    expect(Object.keys((l.persist(state) as { historyValue: object }).historyValue)).not.toHaveLength(0);
    expect(l.persist(state)).toMatchObject({ status: "done", output: { total: 0 } });
    expect(JSON.stringify(l.persist(state))).toBe(JSON.stringify(m.getPersistedSnapshot(state as never)));
  });
});
