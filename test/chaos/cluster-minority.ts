/**
 * The minority case of the cluster chaos test: with two of three nodes down, an enqueue, an event
 * publish and an entity send through the last node wait (re-sent with the same id), then fail with
 * a retryable error; with enough patience they go through once a majority is back, stored once.
 */
import { Coordinator, EventBus, FastAgenticError, PublishError, silentLogger } from "fastagentic";
import { expect } from "vitest";
import { NatsTransport } from "../../transports/nats/index.js";
import { uniqueNamespace } from "../helpers/brokers.js";
import { deleteEntityObjects } from "../integration/nats/nats-helpers.js";
import type { PrivateNatsCluster } from "../integration/nats/private-cluster.js";
import { ClusterLedger } from "./cluster-streams-load.js";

/** Resolves once `check()` holds, looking every 50 ms, bounded. */
export async function eventuallyTrue(
  check: () => boolean,
  what: string,
  guardMs = 30_000,
  describe = () => "",
): Promise<void> {
  const deadline = Date.now() + guardMs;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`hang guard (${guardMs} ms): waited for ${what}; ${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Client {
  transport: NatsTransport;
  bus: EventBus;
  coordinator: Coordinator;
}

export async function minorityCase(c: PrivateNatsCluster, replicas: number): Promise<void> {
  await c.restartDown();
  const namespace = uniqueNamespace("minority");
  const clients: Client[] = [];
  const client = async (publishTimeoutMs: number, publishAttempts: number): Promise<Client> => {
    const transport = new NatsTransport({
      servers: c.servers,
      namespace,
      replicas,
      publishTimeoutMs,
      publishAttempts,
      reconnectWaitMs: 50,
      streamsOnClose: "delete",
    });
    await transport.connect();
    const bus = new EventBus({ transport, logger: silentLogger });
    const coordinator = new Coordinator({
      transport,
      logger: silentLogger,
      config: { minWorkers: 0, autoScale: false },
    });
    await coordinator.start();
    const made = { transport, bus, coordinator };
    clients.push(made);
    return made;
  };
  const body = (text: string) => new TextEncoder().encode(text);
  const append = (k: Client, n: number, id: string) =>
    k.coordinator.entity(ClusterLedger, "m-1").send({ type: "APPEND", n }, { id });
  try {
    // Gives up after 4 sends and 2 s; waits up to 60 s.
    const quick = await client(500, 4);
    const patient = await client(2000, 30);
    // Both know the queue's, the event log's and the mailbox's streams already (creating one
    // needs the meta leader, a majority too).
    for (const [k, name] of [
      [patient, "before"],
      [quick, "before-too"],
    ] as const) {
      await k.transport.enqueue("q.minority", body(name), { priority: 5 });
      await k.bus.publish("m.event", { name }, { id: name });
      await append(k, name.length, name);
    }
    const stream = patient.transport.names.streamName("q.minority");
    await c.current(stream, ["fa-p1"], replicas);
    await c.current(`${namespace}~events`, "all", replicas);
    await c.current(`${namespace}~ent~${ClusterLedger.name}`, "all", replicas);

    const down = c.nodes.slice(1).map((n) => n.name);
    for (const name of down) await c.node(name).server.kill();
    const refused = {
      enqueue: await quick.transport.enqueue("q.minority", body("refused"), { priority: 5 }).catch((e) => e),
      publish: await quick.bus.publish("m.event", { name: "refused" }, { id: "refused" }).catch((e) => e),
      "entity send": await append(quick, -1, "refused").catch((e) => e),
    };
    expect(refused.enqueue).toBeInstanceOf(PublishError);
    for (const error of Object.values(refused)) {
      expect(error).toBeInstanceOf(FastAgenticError);
      expect((error as FastAgenticError).retryable).toBe(true);
    }
    // Sent while only a minority is up: they must wait (not fail) until a majority is back.
    const waiting = Promise.all([
      patient.transport.enqueue("q.minority", body("waited"), { priority: 5, dedupId: "waited-1" }),
      patient.bus.publish("m.event", { name: "waited" }, { id: "waited" }),
      append(patient, 6, "waited"),
    ]);
    await c.node(down[0] as string).server.restart();
    await waiting;
    const got: string[] = [];
    await patient.transport.consume(
      ["q.minority"],
      (d) => {
        got.push(new TextDecoder().decode(d.body));
        void d.ack();
      },
      { concurrency: 4 },
    );
    await eventuallyTrue(() => got.includes("waited"), "the message enqueued during the outage delivered");
    expect(got).toContain("before");
    // The event log and the mailbox hold "before", "before-too" and "waited", each once, and maybe
    // "refused": a send the lone node took but could not commit can be stored once a majority is back.
    const jsm = await c.manager();
    for (const stream of [`${namespace}~events`, `${namespace}~ent~${ClusterLedger.name}`]) {
      const { messages } = (await jsm.streams.info(stream)).state;
      expect(messages === 3 || messages === 4, `${stream} holds ${messages} messages`).toBe(true);
    }
    console.log(
      "[chaos NATS cluster] minority: with publishTimeoutMs 500 × 4, while one node of three was up, " +
        Object.entries(refused)
          .map(([what, e]) => `${what} failed with ${(e as Error).name}`)
          .join(", ") +
        "; with 2000 × 30 all three went through once a second node was back, stored once",
    );
  } finally {
    for (const k of clients) {
      await k.coordinator.stop().catch(() => {});
      await k.bus.close().catch(() => {});
      await k.transport.close().catch(() => {});
    }
    await c.restartDown();
    await deleteEntityObjects(namespace, c.servers[0]).catch(() => {});
  }
}
