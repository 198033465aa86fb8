/**
 * Event bus chaos on NATS JetStream, on a private nats-server (restarted by one case): see
 * events-chaos.ts. AckWait is 1 s, so a dead member's events come back quickly.
 */
import { NatsTransport } from "fastagentic/transports/nats";
import { afterAll } from "vitest";
import { natsServerInstalled, PrivateNatsServer } from "../integration/nats/private-server.js";
import { describeEventChaos } from "./events-chaos.js";

let server: PrivateNatsServer | undefined;
afterAll(async () => server?.destroy());

describeEventChaos({
  name: "NATS",
  available: async () => {
    if (!natsServerInstalled()) {
      if (process.env["CI"]) throw new Error("nats-server is not installed: CI requires it.");
      console.warn("\n*** SKIPPING NATS EVENT CHAOS: nats-server is not installed. ***\n");
      return false;
    }
    server = await PrivateNatsServer.start();
    return true;
  },
  url: () => (server as PrivateNatsServer).url,
  transportOptions: { ackWaitMs: 1000, publishTimeoutMs: 1000, publishAttempts: 60, reconnectWaitMs: 100 },
  restartBroker: async () => {
    await server?.kill();
    await server?.restart();
  },
  cleanup: async (namespace) => {
    const t = new NatsTransport({ servers: [(server as PrivateNatsServer).url], namespace });
    await t.connect();
    await t.deleteStreams();
    await t.close();
  },
});
