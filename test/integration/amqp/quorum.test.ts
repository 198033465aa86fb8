/**
 * `queueType: "quorum"` against the broker: what it declares (a quorum queue per priority level,
 * quorum wait queues, a classic dead-letter queue), the broker's count of returns as the delivery
 * count, and the delivery limit dead-lettering a message whose consumers keep dying. The transport
 * conformance and dead-letters suites run on it too (test/conformance/amqp-quorum.*.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Delivery } from "../../../transports/transport.js";
import { Collector } from "../../helpers/async.js";
import { amqpAvailable, rabbitmqctl, testTransport } from "./amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./broker-lock.js";

const enc = (s: string) => new TextEncoder().encode(s);

describe("AMQP quorum queues", () => {
  let ok = false;
  let release: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ok = await amqpAvailable();
    if (ok) release = await lockBroker();
  }, BROKER_LOCK_WAIT_MS + 10_000);
  afterAll(async () => {
    await release?.();
  });

  it("declares one quorum queue per priority level, quorum wait queues, and a classic dead-letter queue", async ({
    skip,
  }) => {
    if (!ok) skip();
    const t = testTransport({ queueType: "quorum" });
    try {
      await t.enqueue("q.kinds", enc("x"), { priority: 10, delayMs: 100 });
      const out = await rabbitmqctl("list_queues", "name", "type", "--quiet", "--no-table-headers");
      const mine = out
        .split("\n")
        .map((line) => line.trim().split(/\s+/))
        .filter(([name]) => name?.startsWith(t.namespace))
        .map(([name, type]) => `${name?.slice(t.namespace.length)} ${type}`)
        .sort();
      expect(mine).toEqual([
        ".dead.q.kinds classic",
        ".q.kinds:p0 quorum",
        ".q.kinds:p1 quorum",
        ".q.kinds:p2 quorum",
        ".q.kinds:p3 quorum",
        ":wait.100ms quorum",
      ]);
    } finally {
      await t.close();
    }
  });

  it("counts a return as a delivery, and dead-letters a message past its delivery limit", async ({
    skip,
  }) => {
    if (!ok) skip();
    const t = testTransport({ queueType: "quorum", deliveryLimit: 2 });
    try {
      await t.enqueue("q.limit", enc("kills its workers"), { priority: 5 });
      const counts: number[] = [];
      // Each consumer stops holding the message: as if its worker died mid-task.
      for (let i = 0; i < 3; i++) {
        const got = new Collector<Delivery>();
        const consumer = await t.consume(["q.limit"], got.push, { concurrency: 1 });
        const [d] = await got.waitFor(1);
        counts.push(d!.deliveryCount);
        await consumer.stop();
      }
      expect(counts).toEqual([1, 2, 3]);
      // Past 2 returns the broker dead-letters it (at least once) to dead.q.limit.
      const deadline = Date.now() + 10_000;
      let letters = (await t.deadLetters().list("q.limit")).letters;
      while (letters.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        letters = (await t.deadLetters().list("q.limit")).letters;
      }
      expect(letters).toHaveLength(1);
      expect(new TextDecoder().decode(letters[0]!.body)).toBe("kills its workers");
      expect(letters[0]!.reason).toBe("dead-lettered by RabbitMQ (delivery_limit)");
      expect(letters[0]!.headers["x-delivery-count"]).toBeUndefined();
      expect(await t.depth("q.limit")).toBe(0);
    } finally {
      await t.close();
    }
  });
});
