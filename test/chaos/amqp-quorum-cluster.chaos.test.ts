/**
 * A node loss on a private three-node RabbitMQ cluster (started by this test, beside the shared
 * broker, which it never touches: see rabbit-cluster.ts). Quorum queues are declared through node
 * 2, so their leaders are there; a producer and a consumer on node 1 run tasks through them, and
 * node 2 is SIGKILLed mid-run: every enqueue the broker confirmed must be delivered.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { AmqpTransport } from "../../transports/amqp/index.js";
import type { Delivery } from "../../transports/transport.js";
import { uniqueNamespace } from "../helpers/brokers.js";
import { RabbitCluster, rabbitServerInstalled } from "./rabbit-cluster.js";

const TOTAL = 400;
const QUEUE = "cluster.work";

describe("RabbitMQ quorum queues on a three-node cluster", () => {
  const cluster = new RabbitCluster(3);
  let ready = false;
  let bootMs = 0;

  beforeAll(async () => {
    if (!rabbitServerInstalled()) {
      if (process.env["CI"] === "true") throw new Error("rabbitmq-server is not installed");
      console.warn("[cluster] SKIPPED: rabbitmq-server is not installed here");
      return;
    }
    bootMs = await cluster.start();
    ready = true;
    console.log(
      `[cluster] 3 nodes booted and joined in ${bootMs} ms; memory ${cluster.memoryMb().join(" / ")} MB`,
    );
  }, 180_000);

  afterAll(async () => {
    await cluster.stop();
  }, 30_000);

  it("SIGKILL of the node leading the queues under load: no confirmed task lost", async ({ skip }) => {
    if (!ready) skip();
    const namespace = uniqueNamespace("faqc");
    const options = {
      namespace,
      queueType: "quorum" as const,
      logger: silentLogger,
      publishTimeoutMs: 30_000,
    };
    // Declared through node 2: the quorum queues' leaders are placed there (client-local).
    const declarer = new AmqpTransport({ ...options, url: cluster.nodes[1]!.url });
    await declarer.enqueue(QUEUE, new TextEncoder().encode("warm-up"), { priority: 5 });
    await declarer.close();
    const leaders = await cluster.ctl(0, "list_queues", "name", "leader", "--quiet", "--no-table-headers");
    const onNode2 = leaders
      .split("\n")
      .filter((l) => l.includes(`${QUEUE}:p`) && l.includes(cluster.nodes[1]!.name));
    expect(onNode2.length).toBe(4);

    const producer = new AmqpTransport({ ...options, url: cluster.nodes[0]!.url });
    const consumerSide = new AmqpTransport({ ...options, url: cluster.nodes[0]!.url });
    const received = new Map<string, number>();
    let killedAt = 0;
    let firstConfirmAfterKill = 0;
    try {
      await consumerSide.consume(
        [QUEUE],
        (d: Delivery) => {
          const id = new TextDecoder().decode(d.body);
          received.set(id, (received.get(id) ?? 0) + 1);
          setTimeout(() => void d.ack(), 2);
        },
        { concurrency: 8 },
      );
      const confirmed: string[] = [];
      const failed: string[] = [];
      const inFlight = new Set<Promise<void>>();
      for (let n = 0; n < TOTAL; n++) {
        const id = `t${n}`;
        const p = producer
          .enqueue(QUEUE, new TextEncoder().encode(id), { priority: n % 3 === 0 ? 10 : 5 })
          .then(
            () => {
              confirmed.push(id);
              if (killedAt > 0 && firstConfirmAfterKill === 0) firstConfirmAfterKill = Date.now();
            },
            () => void failed.push(id),
          )
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= 16) await Promise.race(inFlight);
        if (n === TOTAL / 4) {
          cluster.kill(1);
          killedAt = Date.now();
        }
      }
      await Promise.all(inFlight);
      const deadline = Date.now() + 60_000;
      const missing = () => confirmed.filter((id) => !received.has(id) && id !== "warm-up");
      while (missing().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const duplicates = [...received.values()].filter((c) => c > 1).length;
      console.log(
        `[cluster] node 2 (leader of the 4 level queues) SIGKILLed after ${TOTAL / 4} submits: ` +
          `${confirmed.length} confirmed, ${failed.length} refused, ${missing().length} confirmed and lost, ` +
          `${duplicates} delivered twice; first confirm ${firstConfirmAfterKill > 0 ? `${firstConfirmAfterKill - killedAt} ms` : "never"} after the kill`,
      );
      // The node is gone, and the queues' leaders moved to the nodes left.
      expect(() => process.kill(cluster.nodes[1]!.pid as number, 0)).toThrow();
      const after = await cluster.ctl(0, "list_queues", "name", "leader", "--quiet", "--no-table-headers");
      const moved = after.split("\n").filter((l) => l.includes(`${QUEUE}:p`));
      expect(moved).toHaveLength(4);
      for (const line of moved) expect(line).not.toContain(cluster.nodes[1]!.name);
      expect(missing()).toEqual([]);
      expect(confirmed.length).toBeGreaterThan(TOTAL / 2);
    } finally {
      await producer.close();
      await consumerSide.close();
    }
  }, 180_000);
});
