/**
 * A network partition on NATS JetStream (partition-case.ts): a nats-server of the test's own,
 * listening on the host side of the partition network, worker processes in two network namespaces.
 * The default AckWait (30 s): what a cut-off worker held runs elsewhere because the coordinator
 * that declared it dead releases it (src/cluster/failover.ts), not because the broker's deadline
 * passed.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { PrivateNatsServer, privateNatsServerAvailable } from "../integration/nats/private-server.js";
import type { BrokerTarget } from "./harness.js";
import { netnsAvailable, PartitionNetwork } from "./netns.js";
import { LOADS, partitionPastTimeout } from "./partition-case.js";

describe("network partition on NATS (worker processes in network namespaces)", () => {
  let network: PartitionNetwork | undefined;
  let server: PrivateNatsServer | undefined;

  beforeAll(async () => {
    if (!(await netnsAvailable("the NATS network partition test"))) return;
    if (!privateNatsServerAvailable("the NATS network partition test")) return;
    network = await PartitionNetwork.create(2);
    server = await PrivateNatsServer.start({ host: network.brokerHost });
  }, 60_000);

  afterAll(async () => {
    await server?.destroy();
    await network?.destroy();
  }, 60_000);

  for (const [load, title] of LOADS) {
    it(title, async ({ skip }) => {
      if (!network || !server) return skip();
      const target: BrokerTarget = {
        name: "NATS",
        url: server.url,
        workerOptions: {},
        clientOptions: { streamsOnClose: "delete" },
      };
      // Half the default AckWait (30 s): a delivery that moves later came back by the deadline, not released.
      await partitionPastTimeout(target, network, {
        coordinator: server.url,
        workers: server.url,
        movesWithinMs: 15_000,
        load,
      });
    }, 240_000);
  }
});
