/**
 * Issue 20, item 4b: one worker serving 1,000 task types and 6 tags must not take the broker down.
 * In layout 1 that was 64,000 work queues (every type × every subset of the tags) plus as many
 * dead-letter queues; with lanes (src/names.ts) it is a handful, whatever the number of types.
 * On both brokers: every task runs, the broker objects of the namespace stay few, the broker
 * still accepts a new connection, and closing the transports deletes them all.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import { connect as amqpConnect } from "amqplib";
import { Coordinator, silentLogger, transportFromUrl, Worker } from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL, amqpAvailable, NATS_URL, natsAvailable, uniqueNamespace } from "../helpers/brokers.js";
import { brokerNames } from "./amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./amqp/broker-lock.js";

const TYPES = Array.from({ length: 1000 }, (_, i) => `type-${i}`);
const TAGS = ["t0", "t1", "t2", "t3", "t4", "t5"];
/** Queues, streams or consumers a namespace may hold at most with lanes (layout 1: tens of thousands). */
const MAX_QUEUES = 12;
const MAX_CONSUMERS = 16;
const TEST_MS = 180_000;

interface Objects {
  queues: number;
  consumers: number;
}

async function natsObjects(ns: string): Promise<Objects> {
  const nc = await natsConnect({ servers: NATS_URL.replace(/^nats:\/\//, ""), timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc);
    const out = { queues: 0, consumers: 0 };
    for await (const s of jsm.streams.list()) {
      if (!s.config.name.startsWith(`${ns}_`) && !s.config.name.startsWith(`${ns}~`)) continue;
      out.queues++;
      out.consumers += s.state.consumer_count;
    }
    return out;
  } finally {
    await nc.close();
  }
}

async function amqpObjects(ns: string): Promise<Objects> {
  const queues = [...(await brokerNames("queues", `${ns}.`)), ...(await brokerNames("queues", `${ns}:`))];
  return { queues: queues.length, consumers: 0 };
}

/** A new connection to the broker is accepted and answered (RabbitMQ past ~900 queues answered none). */
async function acceptsConnection(broker: "nats" | "amqp"): Promise<boolean> {
  if (broker === "nats") {
    const nc = await natsConnect({ servers: NATS_URL.replace(/^nats:\/\//, ""), timeout: 5000 });
    await nc.flush();
    await nc.close();
    return true;
  }
  const conn = await amqpConnect(AMQP_URL, { timeout: 5000 });
  const ch = await conn.createChannel();
  await ch.close();
  await conn.close();
  return true;
}

async function serveManyTypes(broker: "nats" | "amqp"): Promise<void> {
  const ns = uniqueNamespace("mt");
  const url = broker === "nats" ? NATS_URL : AMQP_URL;
  const options =
    broker === "nats" ? { namespace: ns, streamsOnClose: "delete" } : { namespace: ns, deleteOnClose: true };
  const workerTransport = transportFromUrl(url, options);
  const clientTransport = transportFromUrl(url, options);
  const worker = new Worker({ transport: workerTransport, logger: silentLogger, config: { tags: TAGS } });
  for (const type of TYPES) worker.handler(type, async (x: number) => `${type}:${x}`);
  const client = new Coordinator({
    transport: clientTransport,
    logger: silentLogger,
    taskTypes: "any",
    config: { minWorkers: 0, autoScale: false },
  });
  const count = broker === "nats" ? natsObjects : amqpObjects;
  try {
    await client.start();
    await worker.start();
    const submits: Array<Promise<unknown>> = [];
    for (let i = 0; i < TYPES.length; i += 25) {
      const tags = i % 50 === 0 ? [TAGS[i % TAGS.length] as string, "t5"] : [];
      submits.push(client.submit(TYPES[i] as string, i, { tags, timeoutMs: 60_000 }));
    }
    const results = await Promise.all(submits);
    expect(results).toEqual(results.map((_, k) => `type-${k * 25}:${k * 25}`));

    const objects = await count(ns);
    expect(objects.queues).toBeGreaterThan(0);
    expect(objects.queues).toBeLessThanOrEqual(MAX_QUEUES);
    expect(objects.consumers).toBeLessThanOrEqual(MAX_CONSUMERS);
    expect(await acceptsConnection(broker)).toBe(true);
  } finally {
    await worker.stop({ graceful: false }).catch(() => {});
    await client.stop().catch(() => {});
    await workerTransport.close();
    await clientTransport.close();
  }
  expect(await count(ns)).toEqual({ queues: 0, consumers: 0 }); // cleaned up
  expect(await acceptsConnection(broker)).toBe(true);
}

describe("one worker serving 1,000 task types and 6 tags", () => {
  let natsOk = false;
  let amqpOk = false;
  let release: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    natsOk = await natsAvailable();
    amqpOk = await amqpAvailable();
    if (amqpOk) release = await lockBroker();
  }, BROKER_LOCK_WAIT_MS + 10_000);

  afterAll(async () => {
    await release?.();
  });

  it(
    "NATS: bounded streams and consumers, connections accepted, all deleted on close",
    async ({ skip }) => {
      if (!natsOk) skip();
      await serveManyTypes("nats");
    },
    TEST_MS,
  );

  it(
    "RabbitMQ: bounded queues, connections accepted, all deleted on close",
    async ({ skip }) => {
      if (!amqpOk) skip();
      await serveManyTypes("amqp");
    },
    TEST_MS,
  );
});
