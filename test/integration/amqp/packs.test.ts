/**
 * Several tasks per RabbitMQ message (transports/amqp/amqp-packs.ts), against the real broker: a
 * turn's enqueues leave as one message, each task is delivered on its own and settled on its own,
 * a worker never holds more tasks than its concurrency, and a redelivered pack comes back as
 * single tasks, each counted once more.
 */
import { connect } from "amqplib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AmqpTransport } from "../../../transports/amqp/index.js";
import { type Delivery, deadLetterQueueOf } from "../../../transports/transport.js";
import { Collector } from "../../helpers/async.js";
import { AMQP_URL } from "../../helpers/brokers.js";
import { amqpAvailable, testTransport } from "./amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./broker-lock.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("AMQP: several tasks per message", () => {
  let ok = false;
  let release: (() => Promise<void>) | undefined;
  const open: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    ok = await amqpAvailable();
    if (ok) release = await lockBroker();
  }, BROKER_LOCK_WAIT_MS + 10_000);

  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  afterAll(async () => {
    await release?.();
  });

  async function transport(options: Parameters<typeof testTransport>[0] = {}): Promise<AmqpTransport> {
    const t = testTransport(options);
    open.push(t);
    await t.connect();
    return t;
  }

  async function peer(of: AmqpTransport): Promise<AmqpTransport> {
    return transport({ namespace: of.namespace });
  }

  /** A producer and, on its namespace, a consumer of "jobs" collecting what it is handed. */
  async function producerAndConsumer(concurrency: number) {
    const producer = await transport();
    const consumer = await peer(producer);
    const got = new Collector<Delivery>();
    const consuming = await consumer.consume(["jobs"], got.push, { concurrency });
    return { producer, consumer, got, consuming };
  }

  /** Messages ready in a queue, as the broker counts them (not tasks). */
  async function brokerMessages(t: AmqpTransport, queue: string): Promise<number> {
    const conn = await connect(AMQP_URL);
    try {
      const ch = await conn.createChannel();
      const { messageCount } = await ch.checkQueue(`${t.namespace}.${queue}`);
      await ch.close();
      return messageCount;
    } finally {
      await conn.close();
    }
  }

  /** Enqueues `bodies` in one turn (one pack per priority) and waits for their confirms. */
  function enqueueTogether(t: AmqpTransport, queue: string, bodies: string[], priority = 5) {
    return Promise.all(bodies.map((b) => t.enqueue(queue, enc(b), { priority })));
  }

  it("sends a turn's enqueues as one message and delivers each task on its own; depth counts tasks", async ({
    skip,
  }) => {
    if (!ok) skip();
    const producer = await transport();
    await producer.enqueue("jobs", enc("warm-up"), { priority: 5 }); // declares the queue
    const bodies = ["a", "b", "c", "d", "e", "f"];
    await enqueueTogether(producer, "jobs", bodies);
    expect(await brokerMessages(producer, "jobs")).toBe(2);
    expect(await producer.depth("jobs")).toBe(7);

    const consumer = await peer(producer);
    const got = new Collector<Delivery>();
    await consumer.consume(["jobs"], got.push, { concurrency: 16 });
    const all = await got.waitFor(7);
    expect(all.map((d) => dec(d.body)).sort()).toEqual([...bodies, "warm-up"].sort());
    for (const d of all) expect(d.deliveryCount).toBe(1);
    for (const d of all) await d.ack();
    // Once every task of the pack is acked, so is its message: nothing comes back.
    const sink = await peer(producer);
    const late = new Collector<Delivery>();
    await consumer.close();
    await sink.consume(["jobs"], late.push, { concurrency: 16 });
    await sink.enqueue("jobs", enc("marker"), { priority: 5 });
    const [first] = await late.waitFor(1);
    expect(dec(first!.body)).toBe("marker");
    expect(late.items).toHaveLength(1);
  });

  it("never hands a worker more tasks than its concurrency; what does not fit goes back", async ({
    skip,
  }) => {
    if (!ok) skip();
    const { producer, got } = await producerAndConsumer(3);
    const bodies = Array.from({ length: 8 }, (_, i) => `t${i}`);
    await enqueueTogether(producer, "jobs", bodies);

    const firstThree = await got.waitFor(3);
    // The other five went back to the queue as single messages; none was handed over meanwhile.
    let queued = 0;
    for (let n = 0; n < 50 && queued < 5; n++) queued = await brokerMessages(producer, "jobs");
    expect(queued).toBe(5);
    expect(got.items).toHaveLength(3);
    for (const d of firstThree) await d.ack();
    const six = await got.waitFor(6, "three more, once three slots are free");
    expect(got.items).toHaveLength(6);
    for (const d of six.slice(3)) await d.ack();
    const all = await got.waitFor(8, "the last two");
    for (const d of all.slice(6)) await d.ack();
    expect(all.map((d) => dec(d.body)).sort()).toEqual(bodies);
    for (const d of all) expect(d.deliveryCount).toBe(1);
  });

  it("settles each task of a pack on its own: a nack comes back alone, a dead letter goes alone", async ({
    skip,
  }) => {
    if (!ok) skip();
    const { producer, consumer, got } = await producerAndConsumer(8);
    await enqueueTogether(producer, "jobs", ["ok1", "retry", "dead", "ok2"]);
    const four = await got.waitFor(4);
    const byBody = new Map(four.map((d) => [dec(d.body), d]));
    await byBody.get("ok1")!.ack();
    await byBody.get("ok2")!.ack();
    await byBody.get("retry")!.nack({ delayMs: 0 });
    await byBody.get("dead")!.deadLetter("bad input");

    const [, , , , again] = await got.waitFor(5, "the nacked task again");
    expect(dec(again!.body)).toBe("retry");
    expect(again!.deliveryCount).toBe(2);
    await again!.ack();

    const dlq = new Collector<Delivery>();
    await consumer.consume([deadLetterQueueOf("jobs")], dlq.push, { concurrency: 4 });
    const [dead] = await dlq.waitFor(1);
    expect(dec(dead!.body)).toBe("dead");
    await dead!.ack();
    expect(got.items).toHaveLength(5);
    expect(dlq.items).toHaveLength(1);
  });

  it("splits a pack whose consumer stopped holding it: each task comes back alone, counted", async ({
    skip,
  }) => {
    if (!ok) skip();
    const { producer, got, consuming } = await producerAndConsumer(8);
    await enqueueTogether(producer, "jobs", ["x", "y", "z"]);
    const three = await got.waitFor(3);
    await three[0]!.ack(); // one finished; the message stays unacked until all are settled
    await consuming.stop(); // the broker puts the whole message back

    const second = await peer(producer);
    const again = new Collector<Delivery>();
    await second.consume(["jobs"], again.push, { concurrency: 8 });
    const back = await again.waitFor(3, "the three tasks of the pack, one by one");
    expect(back.map((d) => dec(d.body)).sort()).toEqual(["x", "y", "z"]);
    for (const d of back) expect(d.deliveryCount).toBe(2);
    for (const d of back) await d.ack();
    expect(again.items).toHaveLength(3);
  });

  it("sends one message per task with maxTasksPerMessage: 1", async ({ skip }) => {
    if (!ok) skip();
    const producer = await transport({ maxTasksPerMessage: 1 });
    await producer.enqueue("jobs", enc("warm-up"), { priority: 5 });
    await enqueueTogether(producer, "jobs", ["a", "b", "c"]);
    expect(await brokerMessages(producer, "jobs")).toBe(4);
  });
});
