/**
 * The raw clients' own fan-out, beside fastagentic's (bench/harness/events-bench.ts): the same
 * shape as `faProcessesFlow` — the publisher in the bench's process, each group's consumer in a
 * process of its own (bench/events-member.ts, kinds "raw-js" / "raw-amqp") — with nothing of
 * fastagentic in it. Its 3-group against 1-group ratio is what the broker and the clients allow on
 * this machine: the reference for the fan-out target.
 */
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import { connect as amqpConnect } from "amqplib";
import type { Spec } from "./events-bench.js";
import { type Flow, Members, payload } from "./events-flows.js";

const encoder = new TextEncoder();
const groupNames = (groups: number) => Array.from({ length: groups }, (_, g) => `g${g}`);

/** Raw JetStream publish (awaiting each ack) to one stream; one durable pull consumer per group. */
export async function rawJetStreamFanOutFlow(url: string, ns: string, groups: number): Promise<Flow> {
  const nc = await natsConnect({ servers: url.replace(/^nats:\/\//, "") });
  const jsm = await jetstreamManager(nc);
  const stream = `${ns}_raw`;
  const members = new Members();
  try {
    await jsm.streams.add({
      name: stream,
      subjects: [`${ns}.raw.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
    });
    for (const group of groupNames(groups)) {
      await jsm.consumers.add(stream, {
        durable_name: group,
        ack_policy: AckPolicy.Explicit,
        max_ack_pending: 10_000,
      });
    }
    await members.start("raw-js", url, ns, groupNames(groups));
  } catch (error) {
    await members.stop();
    await jsm.streams.delete(stream).catch(() => {});
    await nc.close();
    throw error;
  }
  const js = jetstream(nc);
  let id = 0;
  return {
    publish: async (n) => {
      await js.publish(`${ns}.raw.order`, encoder.encode(JSON.stringify(payload(n))), { msgID: `r-${++id}` });
    },
    handled: async (count) => {
      await members.handled(count);
    },
    membersCpuUs: () => members.cpuUs(),
    close: async () => {
      await members.stop();
      await jsm.streams.delete(stream).catch(() => {});
      await nc.close();
    },
  };
}

/** Raw amqplib: a topic exchange, one durable queue per group, persistent publishes with confirms. */
export async function rawAmqpFanOutFlow(url: string, ns: string, groups: number): Promise<Flow> {
  const conn = await amqpConnect(url, { noDelay: true, timeout: 5000 });
  const pub = await conn.createConfirmChannel();
  const exchange = `${ns}:raw`;
  const queues = groupNames(groups).map((g) => `${ns}:raw.${g}`);
  const members = new Members();
  const cleanUp = async () => {
    for (const q of queues) await pub.deleteQueue(q).catch(() => {});
    await pub.deleteExchange(exchange).catch(() => {});
  };
  try {
    await pub.assertExchange(exchange, "topic", { durable: true });
    for (const q of queues) {
      await pub.assertQueue(q, { durable: true, arguments: { "x-queue-version": 2 } });
      await pub.bindQueue(q, exchange, "bench.#");
    }
    await members.start("raw-amqp", url, ns, groupNames(groups));
  } catch (error) {
    await members.stop();
    await cleanUp();
    await conn.close().catch(() => {});
    throw error;
  }
  return {
    publish: (n) =>
      new Promise<void>((resolve, reject) =>
        pub.publish(
          exchange,
          "bench.order",
          Buffer.from(JSON.stringify(payload(n))),
          { persistent: true },
          (err) => (err ? reject(err) : resolve()),
        ),
      ),
    handled: async (count) => {
      await members.handled(count);
    },
    membersCpuUs: () => members.cpuUs(),
    close: async () => {
      await members.stop();
      await cleanUp();
      await conn.close();
    },
  };
}

/** The raw fan-out rows: 1 and 3 groups on each broker. */
export function rawFanOutSpecs(natsUrl: string, amqpUrl: string): Spec[] {
  return [
    {
      id: "ev-raw-jetstream-1p",
      label: "raw JetStream, 1 group (pull consumer) in its own process",
      kind: "raw",
      broker: "nats",
      make: (ns) => rawJetStreamFanOutFlow(natsUrl, ns, 1),
      latency: false,
    },
    {
      id: "ev-raw-jetstream-3p",
      label: "raw JetStream, 3 groups, a process each (per group)",
      kind: "raw",
      broker: "nats",
      make: (ns) => rawJetStreamFanOutFlow(natsUrl, ns, 3),
      latency: false,
    },
    {
      id: "ev-raw-amqp-1p",
      label: "raw amqplib, 1 group (queue) in its own process",
      kind: "raw",
      broker: "amqp",
      make: (ns) => rawAmqpFanOutFlow(amqpUrl, ns, 1),
      latency: false,
    },
    {
      id: "ev-raw-amqp-3p",
      label: "raw amqplib, 3 groups, a process each (per group)",
      kind: "raw",
      broker: "amqp",
      make: (ns) => rawAmqpFanOutFlow(amqpUrl, ns, 3),
      latency: false,
    },
  ];
}
