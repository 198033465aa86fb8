/**
 * Chaos on RabbitMQ: worker processes started from the CLI, killed, frozen, cut off by the
 * broker's application stopping and starting, fed a poison task and garbage. See cases.ts for
 * what each case asserts. Holds the RabbitMQ test lock (one RabbitMQ test file at a time), and
 * always leaves the broker running.
 */
import { silentLogger } from "../../src/logger.js";
import { AMQP_URL } from "../helpers/brokers.js";
import { amqpAvailable, ensureBrokerRunning, rabbitmqctl } from "../integration/amqp/amqp-helpers.js";
import { lockBroker } from "../integration/amqp/broker-lock.js";
import { brokerRestart } from "./cases.js";
import { describeChaos } from "./chaos-suite.js";
import type { BrokerTarget } from "./harness.js";

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

describeChaos({
  target,
  available: amqpAvailable,
  lock: () => lockBroker(),
  restore: ensureBrokerRunning,
  restart: {
    title: "stop_app / start_app mid-run: no acknowledged task lost, workers resume",
    run: async () => {
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
  },
});
