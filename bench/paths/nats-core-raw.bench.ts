/**
 * Reference without durability: core NATS request-reply with the producer's own reply map (one
 * reply subscription, no timer per request), workers in a queue group.
 */
import { connect } from "@nats-io/transport-node";
import { type BenchPath, decodeJson, encodeJson, type PathSpec, ReplyMap } from "./bench-path.js";

function names(spec: PathSpec) {
  return { work: `${spec.ns}.core.work`, reply: `${spec.ns}.core.reply` };
}

function connectTo(spec: PathSpec) {
  return connect({ servers: spec.natsUrl.replace(/^nats:\/\//, ""), timeout: 5000 });
}

export const natsCoreRawPath: BenchPath = {
  id: "raw-nats-core",
  label: "raw core NATS request-reply (no durability)",
  kind: "raw",
  broker: "nats",

  async probe(spec) {
    const nc = await connectTo(spec);
    await nc.close();
  },

  async worker(spec) {
    const nc = await connectTo(spec);
    let started = 0;
    nc.subscribe(names(spec).work, {
      queue: "workers",
      callback: (_err, msg) => {
        started++;
        if (spec.hold || !msg.reply) return;
        const { i, x } = decodeJson<{ i: number; x: number }>(msg.data);
        nc.publish(msg.reply, encodeJson({ i, y: x * 2 }));
      },
    });
    await nc.flush();
    return { started: () => started, close: () => nc.drain().catch(() => nc.close()) };
  },

  async client(spec) {
    const { work, reply } = names(spec);
    const nc = await connectTo(spec);
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
      call(x) {
        const i = ++seq;
        const result = replies.wait(i);
        nc.publish(work, encodeJson({ i, x }), { reply });
        return result;
      },
      close: () => nc.drain().catch(() => nc.close()),
    };
  },
};
