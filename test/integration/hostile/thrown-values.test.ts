/**
 * Whatever a handler throws, the task fails with a TaskFailedError carrying a safe description,
 * after one run, and the worker goes on: values whose description throws (a `message` getter that
 * throws, null-prototype objects, hostile Proxies) and error texts too long for one message (cut,
 * with a marker), on every transport.
 */
import { Coordinator, FastAgenticError, InMemoryTransport, silentLogger, TaskFailedError } from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { describeThrown } from "../../../src/errors.js";
import type { Transport } from "../../../transports/transport.js";
import { describeEachTransport } from "./each-transport.js";
import { hostileThrowables } from "./hostile-values.js";

describe("describeThrown", () => {
  it("describes every hostile value as a string without throwing", () => {
    for (const [name, make] of Object.entries(hostileThrowables())) {
      const text = describeThrown(make());
      expect(typeof text, name).toBe("string");
      expect(text.length, name).toBeGreaterThan(0);
    }
  });

  it("cuts a long text, saying how much was cut", () => {
    const text = describeThrown(new Error("x".repeat(20_000)), 100);
    expect(text).toBe(`${"x".repeat(100)}… [19900 more characters cut]`);
  });
});

describeEachTransport("a handler that throws", (t) => {
  const open: Array<{ stop(): Promise<void> } | Transport> = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await ("stop" in o ? o.stop() : o.close());
  });

  async function coordinatorOn(transport: Transport): Promise<Coordinator> {
    open.push(transport);
    const coordinator = new Coordinator({
      transport,
      config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
      workerConfig: { maxConcurrentTasks: 2 },
      logger: silentLogger,
    });
    open.push(coordinator);
    return coordinator;
  }

  it("fails the task with a safe description, and the worker goes on", async ({ skip }) => {
    if (!t.ready) skip();
    const coordinator = await coordinatorOn(t.make());
    const throwables = hostileThrowables();
    let runs = 0;
    coordinator.handler("hostile", async (data: { kind: string }) => {
      runs++;
      throw (throwables[data.kind] as () => unknown)();
    });
    coordinator.handler("echo", async (data) => data);
    await coordinator.start();
    for (const kind of Object.keys(throwables)) {
      const error = await coordinator.submit("hostile", { kind }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, kind).toBeInstanceOf(TaskFailedError);
      expect(typeof (error as TaskFailedError).taskError, kind).toBe("string");
      expect(await coordinator.submit("echo", { after: kind })).toEqual({ after: kind });
    }
    expect(runs).toBe(Object.keys(throwables).length);
    expect(coordinator.getStats().workers.restarts).toBe(0);
  });

  it("cuts an error text too large for a message, fails after one run and never redelivers it", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    const coordinator = await coordinatorOn(t.make());
    let runs = 0;
    coordinator.handler("huge-error", async () => {
      runs++;
      throw new Error("e".repeat(2 * 1024 * 1024));
    });
    coordinator.handler("echo", async (data) => data);
    await coordinator.start();
    const error = (await coordinator.submit("huge-error", {}, { retries: 0 }).catch((e) => e)) as Error;
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).taskError).toMatch(/… \[\d+ more characters cut\]$/);
    expect(runs).toBe(1);
    expect(await coordinator.submit("echo", 1)).toBe(1);
    expect(runs).toBe(1);
  });
});

describeEachTransport("a handler whose result is too large for a message", (t) => {
  it("fails its task after one run, with a typed error, and is never redelivered", async ({ skip }) => {
    if (!t.ready) skip();
    const transport = t.make();
    const coordinator = new Coordinator({
      transport,
      config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
      logger: silentLogger,
    });
    let runs = 0;
    coordinator.handler("huge-result", async () => {
      runs++;
      return "r".repeat(4 * 1024 * 1024);
    });
    coordinator.handler("echo", async (data) => data);
    await coordinator.start();
    try {
      const error = await coordinator.submit("huge-result", {}, { retries: 2 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FastAgenticError);
      expect((error as FastAgenticError).message).toMatch(/limit|large/i);
      expect(await coordinator.submit("echo", 1)).toBe(1);
      expect(runs).toBe(1);
    } finally {
      await coordinator.stop();
      await transport.close();
    }
  });
});

describe("an error text on a transport with a small message limit", () => {
  it("is cut further, until the outcome fits", async () => {
    const transport = new InMemoryTransport({ maxPayloadBytes: 2048 });
    const coordinator = new Coordinator({ transport, config: { minWorkers: 1 }, logger: silentLogger });
    let runs = 0;
    coordinator.handler("long", async () => {
      runs++;
      throw new Error("é".repeat(6000));
    });
    await coordinator.start();
    try {
      const error = (await coordinator.submit("long").catch((e) => e)) as TaskFailedError;
      expect(error).toBeInstanceOf(TaskFailedError);
      expect(error.taskError).toMatch(/^é+… \[\d+ more characters cut\]$/);
      expect(runs).toBe(1);
    } finally {
      await coordinator.stop();
    }
  });
});
