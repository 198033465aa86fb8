/** Entity chaos on NATS JetStream (see entities.chaos-suite.ts). */
import { Coordinator } from "../../src/coordinator.js";
import { NatsTransport } from "../../transports/nats/index.js";
import { NATS_URL } from "../helpers/brokers.js";
import { deleteEntityObjects, deleteNamespace, natsAvailable } from "../integration/nats/nats-helpers.js";
import { natsServerInstalled, PrivateNatsServer } from "../integration/nats/private-server.js";
import { describeEntityChaos } from "./entities.chaos-suite.js";

const server = (url: string) => new URL(url).host;

describeEntityChaos({
  url: NATS_URL,
  available: natsAvailable,
  target: {
    name: "NATS",
    workerArgs: (namespace, url) => ["--transport", url, "--namespace", namespace],
    client: async (namespace, url) => {
      const transport = new NatsTransport({ servers: [server(url)], namespace, publishTimeoutMs: 2000 });
      const coordinator = new Coordinator({
        transport,
        config: { minWorkers: 0, maxWorkers: 1, autoScale: false },
      });
      await coordinator.start();
      return {
        coordinator,
        close: async () => {
          await coordinator.stop();
          await transport.close();
        },
      };
    },
    cleanup: async (namespace, url) => {
      await deleteEntityObjects(namespace, server(url)).catch(() => {});
      await deleteNamespace(namespace, server(url)).catch(() => {});
    },
  },
  restart: {
    title: "nats-server killed (kill -9) and restarted mid-run: every id ends at [0..19]",
    broker: async () => {
      if (!natsServerInstalled())
        throw new Error("nats-server is not installed: this case needs a server of its own.");
      const s = await PrivateNatsServer.start();
      return { url: s.url, stop: () => s.kill(), start: () => s.restart(), destroy: () => s.destroy() };
    },
  },
});
