/**
 * A network partition on RabbitMQ (partition-case.ts): the shared broker listens on 127.0.0.1
 * only, so the worker processes in the two network namespaces reach it through a TCP forwarder
 * in the test process, on the host side of the partition network. Cutting a namespace's link
 * leaves the forwarder's connections to the broker open: the broker sees silent clients (AMQP
 * heartbeats of 2 s: it closes them after about two missed ones, and requeues what they held).
 * Holds the RabbitMQ test lock.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { AMQP_URL, amqpAvailable } from "../helpers/brokers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "../integration/amqp/broker-lock.js";
import { type BrokerTarget, GUARD_MS } from "./harness.js";
import { netnsAvailable, PartitionNetwork } from "./netns.js";
import { LOADS, partitionPastTimeout } from "./partition-case.js";
import { TcpForwarder } from "./tcp-forwarder.js";

const target: BrokerTarget = {
  name: "RabbitMQ",
  url: AMQP_URL,
  workerOptions: {},
  clientOptions: { deleteOnClose: true, logger: silentLogger },
  freezeOptions: { heartbeatSeconds: 2 },
};

describe("network partition on RabbitMQ (worker processes in network namespaces)", () => {
  let network: PartitionNetwork | undefined;
  let forwarder: TcpForwarder | undefined;
  let release: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    if (!(await netnsAvailable("the RabbitMQ network partition test"))) return;
    if (!(await amqpAvailable())) return;
    release = await lockBroker();
    network = await PartitionNetwork.create(2);
    const broker = new URL(AMQP_URL);
    forwarder = await TcpForwarder.start(network.brokerHost, {
      host: broker.hostname,
      port: Number(broker.port || 5672),
    });
  }, BROKER_LOCK_WAIT_MS + 60_000);

  afterAll(async () => {
    try {
      await forwarder?.close();
      await network?.destroy();
    } finally {
      await release?.();
    }
  }, 60_000);

  for (const [load, title] of LOADS) {
    it(title, async ({ skip }) => {
      if (!network || !forwarder) return skip();
      const workers = new URL(AMQP_URL);
      workers.hostname = forwarder.host;
      workers.port = String(forwarder.port);
      await partitionPastTimeout(target, network, {
        coordinator: AMQP_URL,
        workers: workers.toString(),
        movesWithinMs: GUARD_MS,
        load,
      });
    }, 240_000);
  }
});
