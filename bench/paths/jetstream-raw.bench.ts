/**
 * Raw baseline with fastagentic's NATS durability: a JetStream work-queue stream on file storage,
 * a durable pull consumer with explicit ack; the worker publishes the result on core NATS, then
 * acks. The producer awaits both the publish ack and the result.
 */
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { type BenchPath, decodeJson, encodeJson, type PathSpec, ReplyMap, within } from "./bench-path.js";

const CONSUMER = "bench-worker";

function names(spec: PathSpec) {
  return { stream: `${spec.ns}_raw`, work: `${spec.ns}.raw.work`, reply: `${spec.ns}.raw.reply` };
}

function connectTo(spec: PathSpec) {
  return connect({ servers: spec.natsUrl.replace(/^nats:\/\//, ""), timeout: 5000 });
}

export const jetstreamRawPath: BenchPath = {
  id: "raw-jetstream",
  label: "raw JetStream (pull, explicit ack, file)",
  kind: "raw",
  broker: "nats",

  async probe(spec) {
    const nc = await connectTo(spec);
    try {
      await within((await jetstreamManager(nc)).getAccountInfo(), 5000, "JetStream account info");
    } finally {
      await nc.close();
    }
  },

  async worker(spec) {
    const { stream, reply } = names(spec);
    const nc = await connectTo(spec);
    const consumer = await jetstream(nc).consumers.get(stream, CONSUMER);
    const messages = await consumer.consume({ max_messages: spec.concurrency });
    let started = 0;
    const loop = (async () => {
      for await (const m of messages) {
        started++;
        if (spec.hold) continue; // never acked: redelivered after AckWait once this process dies
        const { i, x } = decodeJson<{ i: number; x: number }>(m.data);
        nc.publish(reply, encodeJson({ i, y: x * 2 }));
        m.ack();
      }
    })();
    return {
      started: () => started,
      async close() {
        messages.stop();
        await within(loop, 5000, "the consume loop").catch(() => {});
        await within(nc.drain(), 5000, "draining").catch(() => nc.close());
      },
    };
  },

  async client(spec) {
    const { stream, work, reply } = names(spec);
    const nc = await connectTo(spec);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: stream,
      subjects: [work],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
    });
    await jsm.consumers.add(stream, {
      durable_name: CONSUMER,
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: 10_000,
    });
    const js = jetstream(nc);
    const replies = new ReplyMap();
    nc.subscribe(reply, {
      callback: (_err, msg) => {
        const { i, y } = decodeJson<{ i: number; y: number }>(msg.data);
        replies.resolve(i, y);
      },
    });
    await nc.flush();
    let seq = 0;
    return {
      async call(x) {
        const i = ++seq;
        const result = replies.wait(i);
        await js.publish(work, encodeJson({ i, x }));
        return result;
      },
      async close() {
        await within(jsm.streams.delete(stream), 5000, "deleting the stream").catch(() => {});
        await within(nc.drain(), 5000, "draining").catch(() => nc.close());
      },
    };
  },
};
