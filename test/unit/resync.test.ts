/**
 * Outcome events are fan-out, at most once. A client that missed one (its connection was down)
 * asks the workers to send it again; a task's first outcome still wins.
 */

import { Coordinator, InMemoryTransport, silentLogger } from "fastagentic";
import { describe, expect, it } from "vitest";
import { Collector } from "../helpers/async.js";

describe("resync of missed outcomes", () => {
  it("gets a lost outcome again from the worker that published it", async () => {
    const transport = new InMemoryTransport();
    const worker = new Coordinator({
      transport,
      logger: silentLogger,
      config: { minWorkers: 1, autoScale: false },
    });
    const done = new Collector<string>();
    worker.handler("job", async (data: { n: number }) => {
      done.push(String(data.n));
      return data.n * 2;
    });
    await worker.start();
    // The client: a pure client on the same transport.
    const client = new Coordinator({
      transport,
      logger: silentLogger,
      config: { minWorkers: 0, autoScale: false },
    });
    await client.start();
    // Partition: every task event is lost on its way (as while a client reconnects).
    const dropped = new Collector<string>();
    const heal = transport.dropPublishes((m) => {
      if (m.subject !== "ev.default.task") return false;
      const text = new TextDecoder().decode(m.body);
      if (text.includes('"completed"')) dropped.push(text);
      return true;
    });
    const task = await client.submitAsync("job", { n: 21 });
    await done.waitFor(1);
    await dropped.waitFor(1); // the outcome was published, and lost
    expect((await client.getTask(task.id))?.status).toBe("queued");
    heal();
    await client.queue.requestResync();
    expect(await client.waitFor(task.id)).toMatchObject({ status: "completed", result: 42 });
    expect(client.getStats().duplicates).toBe(0);
    await client.stop();
    await worker.stop();
  });
});
