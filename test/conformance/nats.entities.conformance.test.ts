import { NatsTransport } from "../../transports/nats/index.js";
import { uniqueNamespace } from "../helpers/brokers.js";
import {
  deleteEntityObjects,
  deleteNamespace,
  natsAvailable,
  natsServer,
} from "../integration/nats/nats-helpers.js";
import { describeEntitiesConformance } from "./entities-conformance.js";

describeEntitiesConformance({
  name: "nats",
  available: natsAvailable,
  namespace: () => uniqueNamespace("ent"),
  // Each worker and client its own connection, as separate processes would have.
  transport: (namespace) => new NatsTransport({ servers: [natsServer], namespace }),
  cleanup: async (namespace, transports) => {
    for (const t of transports) await t.close();
    await deleteEntityObjects(namespace);
    await deleteNamespace(namespace);
  },
});
