/**
 * Raw baseline with fastagentic's RabbitMQ durability: a durable classic queue (storage version 2,
 * as fastagentic declares them) with priorities,
 * persistent messages, publisher confirms, manual ack with a prefetch, `noDelay: true`. The worker
 * sends the result to the producer's reply queue, then acks; the producer awaits both the confirm
 * and the result.
 */
import amqp from "amqplib";
import { type BenchPath, decodeJson, type PathSpec, ReplyMap, within } from "./bench-path.js";

/** As fastagentic declares its work queues: four priority levels, classic queue version 2. */
const QUEUE_OPTIONS = { durable: true, maxPriority: 3, arguments: { "x-queue-version": 2 } };

function connectTo(spec: PathSpec) {
  return amqp.connect(spec.amqpUrl, { noDelay: true, timeout: 5000 });
}

function queueOf(spec: PathSpec): string {
  return `${spec.ns}.raw.work`;
}

export const amqpRawPath: BenchPath = {
  id: "raw-amqp",
  label: "raw amqplib (durable priority queue, confirms)",
  kind: "raw",
  broker: "amqp",

  async probe(spec) {
    const conn = await within(connectTo(spec), 5000, "connecting to RabbitMQ");
    await conn.close();
  },

  async worker(spec) {
    const conn = await connectTo(spec);
    const ch = await conn.createChannel();
    await ch.assertQueue(queueOf(spec), QUEUE_OPTIONS);
    await ch.prefetch(spec.concurrency);
    let started = 0;
    await ch.consume(
      queueOf(spec),
      (msg) => {
        if (!msg) return;
        started++;
        if (spec.hold) return; // never acked: requeued when this process dies
        const { i, x } = decodeJson<{ i: number; x: number }>(msg.content);
        ch.sendToQueue(msg.properties.replyTo as string, Buffer.from(JSON.stringify({ i, y: x * 2 })));
        ch.ack(msg);
      },
      { noAck: false },
    );
    return {
      started: () => started,
      close: () => within(conn.close(), 5000, "closing the connection").catch(() => {}),
    };
  },

  async client(spec) {
    const conn = await connectTo(spec);
    const ch = await conn.createConfirmChannel();
    const work = queueOf(spec);
    await ch.assertQueue(work, QUEUE_OPTIONS);
    const { queue: replyTo } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
    const replies = new ReplyMap();
    await ch.consume(
      replyTo,
      (msg) => {
        if (!msg) return;
        const { i, y } = decodeJson<{ i: number; y: number }>(msg.content);
        replies.resolve(i, y);
      },
      { noAck: true },
    );
    let seq = 0;
    return {
      async call(x) {
        const i = ++seq;
        const result = replies.wait(i);
        await new Promise<void>((resolve, reject) => {
          ch.sendToQueue(
            work,
            Buffer.from(JSON.stringify({ i, x })),
            { persistent: true, priority: 1, replyTo },
            (err) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()),
          );
        });
        return result;
      },
      async close() {
        await within(ch.deleteQueue(work), 5000, "deleting the queue").catch(() => {});
        await within(conn.close(), 5000, "closing the connection").catch(() => {});
      },
    };
  },
};
