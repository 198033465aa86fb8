/**
 * Chaos on RabbitMQ: worker processes started from the CLI, killed, frozen, cut off by the
 * broker's application stopping and starting, fed a poison task and garbage. See cases.ts for
 * what each case asserts. Holds the RabbitMQ test lock (one RabbitMQ test file at a time), and
 * always leaves the broker running.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { AMQP_URL } from "../helpers/brokers.js";
import { amqpAvailable, ensureBrokerRunning, rabbitmqctl } from "../integration/amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "../integration/amqp/broker-lock.js";
import { brokerRestart, malformedMessages, poisonTask, sigkillMidTask, sigstopPastTimeout } from "./cases.js";
import type { BrokerTarget } from "./harness.js";

const CASE_MS = 240_000;

const target: BrokerTarget = {
  name: "RabbitMQ",
  url: AMQP_URL,
  workerOptions: {},
  clientOptions: { deleteOnClose: true, logger: silentLogger },
  // A frozen process's connection is closed by the broker (and its deliveries requeued) after
  // about two missed heartbeats: 2 s heartbeats instead of 10.
  freezeOptions: { heartbeatSeconds: 2 },
  restartClientOptions: { publishTimeoutMs: 90_000 },
};

describe("chaos on RabbitMQ (worker processes from the CLI)", () => {
  let ok = false;
  let release: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    ok = await amqpAvailable();
    if (ok) release = await lockBroker();
  }, BROKER_LOCK_WAIT_MS + 10_000);

  afterAll(async () => {
    try {
      if (ok) await ensureBrokerRunning();
    } finally {
      await release?.();
    }
  }, 120_000);

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
    "stop_app / start_app mid-run: no acknowledged task lost, workers resume",
    async ({ skip }) => {
      if (!ok) skip();
      try {
        await brokerRestart(target, {
          stop: async () => void (await rabbitmqctl("stop_app")),
          start: async () => {
            await rabbitmqctl("start_app");
            await rabbitmqctl("await_startup");
          },
        });
      } finally {
        await ensureBrokerRunning();
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
