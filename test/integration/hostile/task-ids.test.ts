/**
 * A caller's own task id: the same id, type and data is an idempotent re-send (the same task, its
 * result); another type or other data under that id is a TaskIdConflictError, never the first
 * task's result, on every transport.
 */
import { Coordinator, silentLogger, TaskIdConflictError } from "fastagentic";
import { afterEach, expect, it } from "vitest";
import { describeEachTransport } from "./each-transport.js";

describeEachTransport("a reused task id", (t) => {
  let coordinator: Coordinator | undefined;
  afterEach(async () => {
    const transport = coordinator?.transport;
    await coordinator?.stop();
    await transport?.close();
    coordinator = undefined;
  });

  it("is the same task with the same type and data, and a conflict with another", async ({ skip }) => {
    if (!t.ready) skip();
    coordinator = new Coordinator({
      transport: t.make(),
      config: { minWorkers: 1, autoScale: false },
      logger: silentLogger,
    });
    let runs = 0;
    coordinator.handler("echo", async (data) => {
      runs++;
      return data;
    });
    coordinator.handler("boom", async () => {
      throw new Error("boom");
    });
    await coordinator.start();
    const first = await coordinator.submit("echo", { by: "a", n: [1, 2] }, { id: "order-42" });
    expect(first).toEqual({ by: "a", n: [1, 2] });
    // The same id, type and data (key order aside): the first task, run once.
    expect(await coordinator.submit("echo", { n: [1, 2], by: "a" }, { id: "order-42" })).toEqual(first);
    expect((await coordinator.submitAsync("echo", { by: "a", n: [1, 2] }, { id: "order-42" })).id).toBe(
      "order-42",
    );
    expect(runs).toBe(1);
    // Another type, or other data: a conflict, not the first task's result.
    await expect(coordinator.submit("boom", { by: "b" }, { id: "order-42" })).rejects.toThrow(
      TaskIdConflictError,
    );
    await expect(coordinator.submit("echo", { by: "b" }, { id: "order-42" })).rejects.toThrow(
      /Task id "order-42" is already used by a task with other data/,
    );
    await expect(coordinator.submitAsync("boom", { by: "a", n: [1, 2] }, { id: "order-42" })).rejects.toThrow(
      /already used by a task with the type "echo", not "boom"/,
    );
    expect(runs).toBe(1);
  });
});
