import { NatsTransport } from "../../transports/nats/index.js";
import type { Transport } from "../../transports/transport.js";
import { NATS_URL, natsAvailable, uniqueNamespace } from "../helpers/brokers.js";
import { describeDeliveryReleaseConformance } from "./delivery-release-conformance.js";

const url = new URL(NATS_URL);

describeDeliveryReleaseConformance({
  name: "nats",
  available: natsAvailable,
  namespace: () => uniqueNamespace("rel"),
  create: (namespace) => new NatsTransport({ servers: [`${url.hostname}:${url.port || 4222}`], namespace }),
  cleanup: async (transport: Transport) => {
    if (transport instanceof NatsTransport && transport.state === "connected")
      await transport.deleteStreams();
  },
});
