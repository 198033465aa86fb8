/**
 * Helpers of the NATS tests: is the shared server up, a transport in a namespace of its own, and
 * a sweep that deletes every stream a namespace left on the server (for tests whose transports
 * share one namespace, where no single transport may delete the streams on close).
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsTransport, type NatsTransportOptions } from "../../../transports/nats/index.js";
import { NATS_URL, uniqueNamespace } from "../../helpers/brokers.js";

export const natsUrl = new URL(NATS_URL);
export const natsServer = `${natsUrl.hostname}:${natsUrl.port || 4222}`;

export { natsAvailable } from "../../helpers/brokers.js";

/** A transport in a fresh namespace that deletes its streams when it closes. */
export function testTransport(options: NatsTransportOptions = {}): NatsTransport {
  return new NatsTransport({
    servers: [natsServer],
    namespace: uniqueNamespace("fat"),
    streamsOnClose: "delete",
    ...options,
  });
}

/** Names of the streams holding a namespace's work queues. */
export async function streamsOf(namespace: string, server = natsServer): Promise<string[]> {
  const nc = await connect({ servers: server });
  try {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const name of jsm.streams.names(`${namespace}.work.>`)) names.push(name);
    return names;
  } finally {
    await nc.close();
  }
}

/** Deletes every stream (and so every consumer) of a namespace. */
export async function deleteNamespace(namespace: string, server = natsServer): Promise<void> {
  const nc = await connect({ servers: server });
  try {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const name of jsm.streams.names(`${namespace}.work.>`)) names.push(name);
    for (const name of names) await jsm.streams.delete(name);
  } finally {
    await nc.close();
  }
}

/** Deletes a namespace's entity objects: mailbox streams, and the state and lease KV buckets. */
export async function deleteEntityObjects(namespace: string, server = natsServer): Promise<void> {
  const nc = await connect({ servers: server });
  try {
    const jsm = await jetstreamManager(nc);
    const ours = (name: string) =>
      name.startsWith(`${namespace}~ent~`) ||
      name === `KV_fa_state_${namespace}` ||
      name === `KV_fa_lease_${namespace}`;
    const names: string[] = [];
    for await (const name of jsm.streams.names()) if (ours(name)) names.push(name);
    for (const name of names) await jsm.streams.delete(name).catch(() => {});
  } finally {
    await nc.close();
  }
}
