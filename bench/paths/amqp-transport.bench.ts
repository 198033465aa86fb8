/**
 * Paths that split the gap between fastagentic on RabbitMQ and raw amqplib (left out of a full
 * run; see BenchPath.extra):
 * - `fa-amqp-transport`: the round trip on fastagentic's AmqpTransport alone, as the Coordinator
 *   and Worker use it (enqueue with a dedupId and a priority, a competing consumer, the result
 *   published to the client's inbox, then the ack), without them. Against raw-amqp it measures
 *   the transport and its wire shapes; against fa-amqp, the Coordinator and the Worker.
 * - `raw-amqp-twin`: raw-amqp under another id, so the side-by-side method can be checked
 *   against itself (an A/A run: any ratio away from 1 is the method's noise or bias).
 */
import { type Transport, transportFromUrl } from "fastagentic";
import { amqpRawPath } from "./amqp-raw.bench.js";
import { type BenchPath, decodeJson, type PathSpec, ReplyMap, within } from "./bench-path.js";

const WORK = "work";
const REPLIES = "ev.replies";

function transportOf(spec: PathSpec, cleanup: boolean): Transport {
  return transportFromUrl(spec.amqpUrl, { namespace: spec.ns, ...(cleanup ? { deleteOnClose: true } : {}) });
}

export const amqpTransportPath: BenchPath = {
  id: "fa-amqp-transport",
  label: "fastagentic AmqpTransport alone",
  kind: "fastagentic",
  broker: "amqp",
  baseline: "raw-amqp",
  extra: true,

  async probe(spec) {
    await amqpRawPath.probe(spec);
  },

  async worker(spec) {
    const transport = transportOf(spec, false);
    await transport.connect();
    let started = 0;
    const consumer = await transport.consume(
      [WORK],
      (delivery) => {
        started++;
        if (spec.hold) return;
        const { i, x, r } = decodeJson<{ i: number; x: number; r?: string }>(delivery.body);
        const reply = Buffer.from(JSON.stringify({ i, y: x * 2 }));
        transport
          .publish(REPLIES, reply, { inbox: r })
          .then(
            () => delivery.ack(),
            () => delivery.nack(),
          )
          .catch(() => {}); // the channel closed: the broker delivers the message again
      },
      { concurrency: spec.concurrency },
    );
    return {
      started: () => started,
      async close() {
        await within(consumer.stop(), 5000, "stopping the consumer").catch(() => {});
        await within(transport.close(), 5000, "closing the transport").catch(() => {});
      },
    };
  },

  async client(spec) {
    const transport = transportOf(spec, true);
    await transport.connect();
    const replies = new ReplyMap();
    const subscription = await transport.subscribe(REPLIES, (message) => {
      const { i, y } = decodeJson<{ i: number; y: number }>(message.body);
      replies.resolve(i, y);
    });
    let seq = 0;
    return {
      async call(x) {
        const i = ++seq;
        const result = replies.wait(i);
        const body = Buffer.from(JSON.stringify({ i, x, r: subscription.inbox }));
        await transport.enqueue(WORK, body, { priority: 5, dedupId: `t${i}` });
        return result;
      },
      async close() {
        await within(transport.close(), 10_000, "closing the transport").catch(() => {});
      },
    };
  },
};

export const amqpRawTwinPath: BenchPath = {
  ...amqpRawPath,
  id: "raw-amqp-twin",
  label: "raw amqplib, twin (A/A check)",
  extra: true,
};
