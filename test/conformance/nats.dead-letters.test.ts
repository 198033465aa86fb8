import { NatsTransport } from "../../transports/nats/index.js";
import type { Transport } from "../../transports/transport.js";
import { brokerAvailable, NATS_URL, uniqueNamespace } from "../helpers/brokers.js";
import { describeDeadLettersConformance } from "./dead-letters-conformance.js";

const url = new URL(NATS_URL);

describeDeadLettersConformance({
  name: "nats",
  available: () => brokerAvailable("NATS", url.hostname, Number(url.port || 4222)),
  create: () =>
    new NatsTransport({
      servers: [`${url.hostname}:${url.port || 4222}`],
      namespace: uniqueNamespace("dlconf"),
      streamsOnClose: "delete",
    }),
  cleanup: async (transport: Transport) => {
    if (transport instanceof NatsTransport && transport.state === "connected")
      await transport.deleteStreams();
  },
  listsQueues: true,
});
