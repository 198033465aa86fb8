import { NatsTransport } from "../../../transports/nats/index.js";
import { brokerAvailable, NATS_URL } from "../../helpers/brokers.js";
import { deleteEntityObjects } from "../nats/nats-helpers.js";
import { describeDashboardInBrowser } from "./dashboard-browser.suite.js";

const url = new URL(NATS_URL);
const servers = [`${url.hostname}:${url.port || 4222}`];

describeDashboardInBrowser({
  name: "nats",
  available: () => brokerAvailable("NATS", url.hostname, Number(url.port || 4222)),
  transport: (namespace) => new NatsTransport({ servers, namespace }),
  url: NATS_URL,
  depthPerPriority: true,
  cleanup: async (namespace) => {
    await deleteEntityObjects(namespace, servers[0]);
    const t = new NatsTransport({ servers, namespace });
    await t.connect();
    await t.deleteStreams();
    await t.close();
  },
});
