/**
 * A client cannot make the broker or the metrics grow by inventing task types: a coordinator
 * refuses types no worker serves (400 over HTTP, without listing the types served), creating no
 * queue or stream for them; a declared list (`taskTypes`) is honoured; a pure client that submits
 * right after start(), or before its worker has announced itself, waits for it instead of failing;
 * and the metrics keep at most `maxTypeLabels` type labels.
 */
import { App, Coordinator, NoHandlerError, silentLogger, WorkerPool } from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";
import { OTHER_TYPES_LABEL } from "../../../src/app/metrics.js";
import type { Transport } from "../../../transports/transport.js";
import { brokerNames } from "../amqp/amqp-helpers.js";
import { streamsOf } from "../nats/nats-helpers.js";
import { describeEachTransport, type TransportKind } from "./each-transport.js";

/** The broker objects of a namespace: JetStream streams, or RabbitMQ queues. */
async function brokerObjects(kind: TransportKind, namespace: string): Promise<string[]> {
  if (kind === "nats") return streamsOf(namespace);
  if (kind === "amqp") return brokerNames("queues", `${namespace}.`);
  return [];
}

const namespaceOf = (t: Transport) => (t as unknown as { namespace: string }).namespace;

describeEachTransport("task types no worker serves", (t) => {
  const open: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  /** A worker pool serving `types` on its own transport (the client's peer), started. */
  async function workers(client: Transport, types: string[], tags: string[] = []): Promise<WorkerPool> {
    const transport = t.kind === "memory" ? client : t.make(namespaceOf(client));
    const pool = new WorkerPool({ transport, minWorkers: 1, logger: silentLogger, config: { tags } });
    for (const type of types) pool.handler(type, async (data) => data);
    open.push(async () => {
      await pool.stop();
      if (transport !== client) await transport.close();
    });
    await pool.start();
    return pool;
  }

  function client(transport: Transport, options: Partial<ConstructorParameters<typeof Coordinator>[0]> = {}) {
    const coordinator = new Coordinator({
      transport,
      config: { minWorkers: 0, autoScale: false },
      logger: silentLogger,
      ...options,
    });
    open.push(async () => {
      await coordinator.stop();
      await transport.close();
    });
    return coordinator;
  }

  it("a pure client started after its workers submits at once; random types get 400 and no queue", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    const transport = t.make();
    await transport.connect();
    await workers(transport, ["echo"]);
    const coordinator = client(transport);
    const app = new App({ appLogger: silentLogger });
    app.mountCoordinator(coordinator);
    open.push(() => app.close());
    await coordinator.start();
    // Right after start(): the workers' answers to its ping may not have arrived yet.
    expect(await coordinator.submit("echo", { at: "start" })).toEqual({ at: "start" });
    const before = await brokerObjects(t.kind, namespaceOf(transport));

    // Side by side: each waits typeDiscoveryMs for a worker that could serve its type.
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        app.server.inject({
          method: "POST",
          url: "/tasks",
          payload: { type: `random-${i}-${Math.random().toString(36).slice(2)}`, data: {} },
        }),
      ),
    );
    for (const r of replies) {
      expect(r.statusCode).toBe(400);
      expect(r.json().error.code).toBe("FA_NO_HANDLER");
      expect(r.body).not.toContain("echo"); // the types served are not listed to anyone who asks
    }
    expect(await brokerObjects(t.kind, namespaceOf(transport))).toEqual(before);
    const metrics = (await app.server.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).not.toContain("random-");
    await expect(coordinator.submit("nope")).rejects.toThrow(NoHandlerError);
    await expect(coordinator.submit("nope")).rejects.toThrow(/Registered types: "echo"/); // the API does list them
  });

  it("tag sets no worker carries are refused the same way, and create nothing", async ({ skip }) => {
    if (!t.ready) skip();
    const transport = t.make();
    await transport.connect();
    await workers(transport, ["render"], ["gpu", "fast"]);
    const coordinator = client(transport);
    await coordinator.start();
    expect(await coordinator.submit("render", 1, { tags: ["gpu"] })).toBe(1);
    expect(await coordinator.submit("render", 2, { tags: ["fast", "gpu"] })).toBe(2);
    const before = await brokerObjects(t.kind, namespaceOf(transport));
    const refusals = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        coordinator.submit("render", i, { tags: ["gpu", `random-${i}`] }).catch((e: unknown) => e),
      ),
    );
    for (const e of refusals) {
      expect(e).toBeInstanceOf(NoHandlerError);
      expect((e as Error).message).toMatch(
        /No worker carrying the tags "gpu", "random-\d+" handles task type "render"/,
      );
    }
    expect(await brokerObjects(t.kind, namespaceOf(transport))).toEqual(before);
  });

  // In one process every worker is known at once: nothing to wait for in memory.
  if (t.kind !== "memory") {
    it("waits for a worker that starts after the submit", async ({ skip }) => {
      if (!t.ready) skip();
      const transport = t.make();
      const coordinator = client(transport, { typeDiscoveryMs: 30_000 });
      await coordinator.start();
      const result = coordinator.submit("late", { n: 1 });
      await workers(transport, ["late"]);
      expect(await result).toEqual({ n: 1 });
    });
  }

  it("a declared list: accepted without a worker, others refused at once; 'any' accepts all", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    const declared = client(t.make(), { taskTypes: ["planned"], typeDiscoveryMs: 60_000 });
    await declared.start();
    expect((await declared.submitAsync("planned", {})).status).toBe("queued");
    await expect(declared.submitAsync("unplanned", {})).rejects.toThrow(NoHandlerError);
    const open = client(t.make(), { taskTypes: "any" });
    await open.start();
    expect((await open.submitAsync("whatever", {})).status).toBe("queued");
  });
});

describe("metrics", () => {
  it("keep at most maxTypeLabels type labels; the rest are counted as (other)", async () => {
    const coordinator = new Coordinator({ config: { minWorkers: 1 }, logger: silentLogger });
    for (let i = 0; i < 30; i++) coordinator.handler(`t${i}`, async () => i);
    const app = new App({ appLogger: silentLogger });
    app.mountCoordinator(coordinator, { metrics: { maxTypeLabels: 10 } });
    await app.server.ready();
    await coordinator.start();
    try {
      await Promise.all(Array.from({ length: 30 }, (_, i) => coordinator.submit(`t${i}`)));
      const text = (await app.server.inject({ method: "GET", url: "/metrics" })).body;
      const types = new Set([...text.matchAll(/type="([^"]+)"/g)].map((m) => m[1]));
      expect(types.size).toBe(11);
      expect(types.has(OTHER_TYPES_LABEL)).toBe(true);
      expect(text).toContain(
        `fastagentic_task_latency_seconds_count{type="${OTHER_TYPES_LABEL}",status="completed"} 20`,
      );
    } finally {
      await app.close();
      await coordinator.stop();
    }
  });
});
