import { afterAll, beforeAll } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { AmqpTransport } from "../../transports/amqp/index.js";
import { AMQP_URL, uniqueNamespace } from "../helpers/brokers.js";
import { amqpAvailable, deleteNamespace } from "../integration/amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "../integration/amqp/broker-lock.js";
import { describeMailboxConformance, type MailboxEndpoint } from "./entity-mailbox-conformance.js";

// One RabbitMQ test file at a time: others stop the broker or lower its limits.
let release: (() => Promise<void>) | undefined;
beforeAll(async () => {
  release = await lockBroker();
}, BROKER_LOCK_WAIT_MS + 10_000);
afterAll(async () => {
  await release?.();
});

const namespaces = new WeakMap<MailboxEndpoint, string>();

async function endpoint(namespace: string, owner: boolean): Promise<MailboxEndpoint> {
  const transport = new AmqpTransport({ url: AMQP_URL, namespace, logger: silentLogger });
  await transport.connect();
  const e: MailboxEndpoint = {
    mailbox: transport.entityMailbox(),
    // The broker sees the connection go, as when a process dies: unacked messages go back to their queues.
    crash: async () => {
      await transport.connection.current?.close();
    },
    close: async () => {
      await transport.close();
      if (owner) await deleteNamespace(namespace); // every queue a test declares is deleted
    },
  };
  namespaces.set(e, namespace);
  return e;
}

describeMailboxConformance({
  name: "amqp",
  available: amqpAvailable,
  create: () => endpoint(uniqueNamespace("fa-mb-"), true),
  peer: (first) => endpoint(namespaces.get(first)!, false),
  dedup: false,
  sequenced: false,
  crashes: true,
});
