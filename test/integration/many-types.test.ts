/**
 * Issue 20, item 4b: one worker serving 1,000 task types and 6 tags must not take the broker down.
 * In layout 1 that was 64,000 work queues (every type × every subset of the tags) plus as many
 * dead-letter queues; with lanes (src/names.ts) it is a handful, whatever the number of types.
 * A second worker with another profile (a type and a tag the first lacks) gets its tasks through
 * the shared lane (moved to its lane when the first worker takes them). On both brokers: every
 * task runs, the broker objects of the namespace stay few, the broker
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
/**
 * Work queues (NATS streams, RabbitMQ queues named `<ns>.…`) a namespace may hold with lanes and two
 * worker profiles: a shared lane and two profile lanes, each with its dead-letter queue. Layout 1
 * made 128,000 for these 1,000 types and 6 tags.
 */
const MAX_WORK_QUEUES = 6;
/** Everything of the namespace, RabbitMQ's subscription queues (one per subscriber) and delay buckets included. */
const MAX_QUEUES = 20;
const MAX_CONSUMERS = 24;
const TEST_MS = 180_000;

interface Objects {
  /** Lanes and their dead-letter queues. */
  work: number;
  /** All queues or streams of the namespace. */
  queues: number;
  consumers: number;
}

async function natsObjects(ns: string): Promise<Objects> {
  const nc = await natsConnect({ servers: NATS_URL.replace(/^nats:\/\//, ""), timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc);
    const out = { work: 0, queues: 0, consumers: 0 };
    for await (const s of jsm.streams.list()) {
      if (!s.config.name.startsWith(`${ns}_`) && !s.config.name.startsWith(`${ns}~`)) continue;
      out.queues++;
      if (s.config.name.startsWith(`${ns}_w2_`)) out.work++;
      out.consumers += s.state.consumer_count;
    }
    return out;
  } finally {
    await nc.close();
  }
}

async function amqpObjects(ns: string): Promise<Objects> {
  const work = await brokerNames("queues", `${ns}.`);
  const other = await brokerNames("queues", `${ns}:`);
  return { work: work.length, queues: work.length + other.length, consumers: 0 };
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
  // Another profile: its tasks reach it through the shared lane, moved by the big worker if it takes them.
  const otherTransport = transportFromUrl(url, options);
  const other = new Worker({ transport: otherTransport, logger: silentLogger, config: { tags: ["gpu"] } });
  other.handler("render", async (x: number) => `render:${x}`);
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
    await other.start();
    const renders = Array.from({ length: 20 }, (_, i) =>
      client.submit("render", i, { tags: i % 2 === 0 ? ["gpu"] : [], timeoutMs: 60_000 }),
    );
    const submits: Array<Promise<unknown>> = [];
    for (let i = 0; i < TYPES.length; i += 25) {
      const tags = i % 50 === 0 ? [TAGS[i % TAGS.length] as string, "t5"] : [];
      submits.push(client.submit(TYPES[i] as string, i, { tags, timeoutMs: 60_000 }));
    }
    const results = await Promise.all(submits);
    expect(results).toEqual(results.map((_, k) => `type-${k * 25}:${k * 25}`));
    expect(await Promise.all(renders)).toEqual(renders.map((_, i) => `render:${i}`));

    const objects = await count(ns);
    expect(objects.work).toBeGreaterThanOrEqual(3); // the shared lane and the two profile lanes
    expect(objects.work).toBeLessThanOrEqual(MAX_WORK_QUEUES);
    expect(objects.queues).toBeLessThanOrEqual(MAX_QUEUES);
    expect(objects.consumers).toBeLessThanOrEqual(MAX_CONSUMERS);
    expect(await acceptsConnection(broker)).toBe(true);
  } finally {
    await worker.stop({ graceful: false }).catch(() => {});
    await other.stop({ graceful: false }).catch(() => {});
    await client.stop().catch(() => {});
    await otherTransport.close();
    await workerTransport.close();
    await clientTransport.close();
  }
  expect(await count(ns)).toEqual({ work: 0, queues: 0, consumers: 0 }); // cleaned up
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
