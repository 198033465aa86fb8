import { NatsTransport } from "../../transports/nats/index.js";
import type { NatsStateStore } from "../../transports/nats/nats-state-store.js";
import type { StateStore } from "../../transports/state-store.js";
import { brokerAvailable, NATS_URL, uniqueNamespace } from "../helpers/brokers.js";
import { describeStateStoreConformance } from "./state-store-conformance.js";

const url = new URL(NATS_URL);
const server = `${url.hostname}:${url.port || 4222}`;
const transports = new Map<StateStore, NatsTransport>();

async function storeIn(namespace: string): Promise<StateStore> {
  const transport = new NatsTransport({ servers: [server], namespace, maxPayloadBytes: 64 * 1024 });
  await transport.connect();
  const store = transport.stateStore();
  transports.set(store, transport);
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    await transport.close();
  };
  return store;
}

describeStateStoreConformance({
  name: "nats-kv",
  available: () => brokerAvailable("NATS", url.hostname, Number(url.port || 4222)),
  create: () => storeIn(uniqueNamespace("kv")),
  // Another process: its own connection to the same bucket.
  peer: (store) => storeIn(transports.get(store)!.namespace),
  // The bucket a test creates is deleted after it.
  cleanup: async (store) => (store as NatsStateStore).destroy(),
});
