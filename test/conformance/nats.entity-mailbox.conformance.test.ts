import { NatsTransport } from "../../transports/nats/index.js";
import { brokerAvailable, NATS_URL, uniqueNamespace } from "../helpers/brokers.js";
import { deleteEntityObjects } from "../integration/nats/nats-helpers.js";
import { describeMailboxConformance, type MailboxEndpoint } from "./entity-mailbox-conformance.js";

const url = new URL(NATS_URL);
const server = `${url.hostname}:${url.port || 4222}`;
const namespaces = new WeakMap<MailboxEndpoint, string>();

async function endpoint(namespace: string, owner: boolean): Promise<MailboxEndpoint> {
  const transport = new NatsTransport({ servers: [server], namespace });
  await transport.connect();
  const e: MailboxEndpoint = {
    mailbox: transport.entityMailbox(),
    crash: async () => {},
    close: async () => {
      await transport.close();
      if (owner) await deleteEntityObjects(namespace);
    },
  };
  namespaces.set(e, namespace);
  return e;
}

describeMailboxConformance({
  name: "nats",
  available: () => brokerAvailable("NATS", url.hostname, Number(url.port || 4222)),
  create: () => endpoint(uniqueNamespace("mb"), true),
  peer: (first) => endpoint(namespaces.get(first)!, false),
  dedup: true,
  sequenced: true,
  crashes: false,
});
