/**
 * Entity chaos on RabbitMQ, state in PostgreSQL (see entities.chaos-suite.ts). Holds the RabbitMQ
 * test lock and always leaves the broker running.
 */
import { Coordinator } from "../../src/coordinator.js";
import { silentLogger } from "../../src/logger.js";
import { AmqpTransport } from "../../transports/amqp/index.js";
import { PostgresStateStore } from "../../transports/postgres/index.js";
import { AMQP_URL, POSTGRES_URL } from "../helpers/brokers.js";
import {
  amqpAvailable,
  deleteNamespace,
  ensureBrokerRunning,
  rabbitmqctl,
} from "../integration/amqp/amqp-helpers.js";
import { lockBroker } from "../integration/amqp/broker-lock.js";
import { describeEntityChaos } from "./entities.chaos-suite.js";

const table = (namespace: string) => namespace.replaceAll("-", "_");

describeEntityChaos({
  url: AMQP_URL,
  available: amqpAvailable,
  lock: () => lockBroker(),
  restore: ensureBrokerRunning,
  target: {
    name: "RabbitMQ",
    // 2 s heartbeats: the broker closes a frozen process's connection (requeuing what it holds) after ~4-6 s.
    workerArgs: (namespace, url) => [
      "--transport",
      url,
      "--namespace",
      namespace,
      "--transport-options",
      '{"heartbeatSeconds":2}',
      "--state-store",
      `${POSTGRES_URL}?table=${table(namespace)}`,
    ],
    client: async (namespace, url) => {
      const transport = new AmqpTransport({ url, namespace, logger: silentLogger, publishTimeoutMs: 5000 });
      const stateStore = new PostgresStateStore({ connectionString: POSTGRES_URL, table: table(namespace) });
      const coordinator = new Coordinator({
        transport,
        config: { minWorkers: 0, maxWorkers: 1, autoScale: false },
        entities: { stateStore },
      });
      await coordinator.start();
      return {
        coordinator,
        close: async () => {
          await coordinator.stop();
          await transport.close();
          await stateStore.close();
        },
      };
    },
    cleanup: async (namespace) => {
      await deleteNamespace(namespace).catch(() => {});
      const store = new PostgresStateStore({ connectionString: POSTGRES_URL, table: table(namespace) });
      await store.dropTable().catch(() => {});
      await store.close();
    },
  },
  restart: {
    title: "RabbitMQ stop_app / start_app mid-run: every id ends at [0..19]",
    broker: async () => ({
      url: AMQP_URL,
      stop: async () => void (await rabbitmqctl("stop_app")),
      start: async () => {
        await rabbitmqctl("start_app");
        await rabbitmqctl("await_startup");
      },
      destroy: ensureBrokerRunning,
    }),
  },
});
