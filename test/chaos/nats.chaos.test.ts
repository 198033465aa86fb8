/**
 * Chaos on NATS JetStream: worker processes started from the CLI, killed, frozen, cut off from
 * their server, fed a poison task and garbage. See cases.ts for what each case asserts.
 */
import { describe, it } from "vitest";
import { brokerAvailable, NATS_URL } from "../helpers/brokers.js";
import { natsServerInstalled, PrivateNatsServer } from "../integration/nats/private-server.js";
import { brokerRestart } from "./cases.js";
import { describeChaos } from "./chaos-suite.js";
import { finishedAfterUncleanRestart } from "./finished-record-chaos.js";
import type { BrokerTarget } from "./harness.js";

const natsUrl = new URL(NATS_URL);

const target: BrokerTarget = {
  name: "NATS",
  url: NATS_URL,
  // A dead worker's deliveries come back after AckWait: 2 s instead of 30. Every process of a
  // namespace uses the same value (the last one to start sets the consumers').
  workerOptions: { ackWaitMs: 2000 },
  clientOptions: { ackWaitMs: 2000, streamsOnClose: "delete" },
  restartClientOptions: { publishTimeoutMs: 1000, publishAttempts: 60, reconnectWaitMs: 100 },
};

describeChaos({
  target,
  available: () => brokerAvailable("NATS", natsUrl.hostname, Number(natsUrl.port || 4222)),
  restart: {
    title: "nats-server killed and restarted mid-run: no acknowledged task lost, workers resume",
    run: async () => {
      if (!natsServerInstalled()) {
        // CI has it (and must); a laptop without the binary cannot run this case.
        throw new Error(
          "nats-server is not installed at /usr/sbin/nats-server: this case needs its own server.",
        );
      }
      const server = await PrivateNatsServer.start();
      try {
        await brokerRestart(target, { stop: () => server.kill(), start: () => server.restart() }, server.url);
      } finally {
        await server.destroy();
      }
    },
  },
});

describe("chaos on NATS: the record of finished tasks (#16.5)", () => {
  it("kill -9 of nats-server mid-run (2,000 tasks, 8 in flight), restart on the same store: none lost, one outcome each, duplicates counted as the handlers saw them, no handler re-run after its outcome was recorded", async ({
    skip,
  }) => {
    if (!(await brokerAvailable("NATS", natsUrl.hostname, Number(natsUrl.port || 4222)))) skip();
    if (!natsServerInstalled()) {
      throw new Error(
        "nats-server is not installed at /usr/sbin/nats-server: this case needs its own server.",
      );
    }
    const server = await PrivateNatsServer.start();
    try {
      await finishedAfterUncleanRestart(target, server);
    } finally {
      await server.destroy();
    }
  }, 240_000);
});
