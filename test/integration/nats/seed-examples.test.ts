import { expect } from "vitest";
import { NATS_URL } from "../../helpers/brokers.js";
import { describeSeedExamples } from "../seed-examples.suite.js";
import { deleteNamespace, natsAvailable, streamsOf } from "./nats-helpers.js";

describeSeedExamples({
  name: "NATS",
  kind: "nats",
  url: NATS_URL,
  available: natsAvailable,
  cleanup: async (namespace) => {
    await deleteNamespace(namespace);
    expect(await streamsOf(namespace)).toEqual([]);
  },
});
