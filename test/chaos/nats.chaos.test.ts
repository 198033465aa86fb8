/**
 * Chaos on NATS JetStream: worker processes started from the CLI, killed, frozen, cut off from
 * their server, fed a poison task and garbage. See cases.ts for what each case asserts.
 */
import { beforeAll, describe, it } from "vitest";
import { brokerAvailable, NATS_URL } from "../helpers/brokers.js";
import { natsServerInstalled, PrivateNatsServer } from "../integration/nats/private-server.js";
import {
  type BrokerRestart,
  brokerRestart,
  malformedMessages,
  poisonTask,
  sigkillMidTask,
  sigstopPastTimeout,
} from "./cases.js";
import type { BrokerTarget } from "./harness.js";

const CASE_MS = 240_000;
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

describe("chaos on NATS (worker processes from the CLI)", () => {
  let ok = false;
  beforeAll(async () => {
    ok = await brokerAvailable("NATS", natsUrl.hostname, Number(natsUrl.port || 4222));
  });

  it(
    "SIGKILL of a worker process mid-task: its tasks run elsewhere, none lost",
    async ({ skip }) => {
      if (!ok) skip();
      await sigkillMidTask(target);
    },
    CASE_MS,
  );

  it(
    "SIGSTOP past workerTimeoutMs then SIGCONT: declared dead, tasks run elsewhere, one outcome each, it rejoins",
    async ({ skip }) => {
      if (!ok) skip();
      await sigstopPastTimeout(target);
    },
    CASE_MS,
  );

  it(
    "nats-server killed and restarted mid-run: no acknowledged task lost, workers resume",
    async ({ skip }) => {
      if (!natsServerInstalled()) {
        if (process.env["CI"]) throw new Error("nats-server is not installed: CI requires it.");
        console.warn("\n*** SKIPPING the NATS restart chaos case: no nats-server binary. ***\n");
        skip();
      }
      const server = await PrivateNatsServer.start();
      const restart: BrokerRestart = { stop: () => server.kill(), start: () => server.restart() };
      try {
        await brokerRestart(target, restart, server.url);
      } finally {
        await server.destroy();
      }
    },
    CASE_MS,
  );

  it(
    "a poison task that kills its process every time: dead-lettered at its delivery limit, no restart storm",
    async ({ skip }) => {
      if (!ok) skip();
      await poisonTask(target);
    },
    CASE_MS,
  );

  it(
    "malformed bytes on a task queue: dead-lettered, the workers go on",
    async ({ skip }) => {
      if (!ok) skip();
      await malformedMessages(target);
    },
    CASE_MS,
  );
});
