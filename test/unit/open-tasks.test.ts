/**
 * TaskQueue.openTasks (what the dashboard's task list reads every tick) lists the tasks not yet
 * finished, oldest first, without walking the finished ones it remembers; a dead letter retried
 * by hand is tracked again, and leaves the list once finished.
 */
import { describe, expect, it } from "vitest";
import { Coordinator, silentLogger, UnrecoverableError } from "../../src/index.js";

describe("openTasks", () => {
  it("lists open tasks only, oldest first, among many finished ones; a retried dead letter is tracked again", async () => {
    const c = new Coordinator({
      logger: silentLogger,
      config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
      workerConfig: { maxConcurrentTasks: 8 },
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let failing = true;
    c.handler("quick", (d: { i: number }) => d.i);
    c.handler("held", () => gate);
    c.handler("fussy", () => {
      if (failing) throw new UnrecoverableError("not yet");
      return "ok";
    });
    await c.start();
    try {
      await Promise.all(Array.from({ length: 2000 }, (_, i) => c.submit("quick", { i })));
      const held = [];
      for (let i = 0; i < 5; i++) held.push(await c.submitAsync("held"));
      const dead = await c.submitAsync("fussy");
      expect((await c.waitFor(dead.id)).status).toBe("failed");
      expect(c.queue.openTasks(100).map((t) => t.id)).toEqual(held.map((t) => t.id));
      expect(c.queue.openTasks(2).map((t) => t.id)).toEqual(held.slice(0, 2).map((t) => t.id));

      // Retried by hand, the dead letter is tracked again: open until it runs (and completes).
      const [letter] = (await c.deadLetters.list()).letters;
      failing = false;
      await c.deadLetters.retry(letter?.id as string);
      expect((await c.waitFor(dead.id)).status).toBe("completed");
      expect(c.queue.openTasks(100).map((t) => t.id)).toEqual(held.map((t) => t.id));
      release();
      await Promise.all(held.map((t) => c.waitFor(t.id)));
      expect(c.queue.openTasks(100)).toEqual([]);
    } finally {
      await c.stop({ graceful: false });
    }
  });
});
