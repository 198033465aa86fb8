/**
 * Chaos on RabbitMQ quorum queues (`?queueType=quorum` in the URL the worker processes get): the
 * cases where quorum queues behave differently from classic ones. A SIGKILLed worker's messages
 * (handed over and held) come back counted by the broker (`x-delivery-count`), not re-stamped by
 * the transport; a poison task is dead-lettered by the workers at their redelivery limit, before
 * the broker's `x-delivery-limit` (20); malformed bytes on the level queues are dead-lettered.
 * The other cases (SIGSTOP, broker restart) do not depend on the queue type: amqp.chaos.test.ts.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { AMQP_URL } from "../helpers/brokers.js";
import { amqpAvailable } from "../integration/amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "../integration/amqp/broker-lock.js";
import { malformedMessages, poisonTask, sigkillMidTask } from "./cases.js";
import type { BrokerTarget } from "./harness.js";

const url = new URL(AMQP_URL);
url.searchParams.set("queueType", "quorum");

const target: BrokerTarget = {
  name: "RabbitMQ quorum",
  url: url.toString(),
  workerOptions: {},
  clientOptions: { deleteOnClose: true, logger: silentLogger },
  freezeOptions: { heartbeatSeconds: 2 },
  restartClientOptions: { publishTimeoutMs: 90_000 },
};

const CASE_MS = 240_000;

describe("chaos on RabbitMQ quorum queues (worker processes from the CLI)", () => {
  let ok = false;
  let release: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ok = await amqpAvailable();
    if (ok) release = await lockBroker();
  }, BROKER_LOCK_WAIT_MS + 10_000);
  afterAll(async () => {
    await release?.();
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
