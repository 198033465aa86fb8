/** examples/entities.ts runs, as a user would start it, on every transport and prints what it promises. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStateStore } from "../../transports/postgres/index.js";
import { AMQP_URL, NATS_URL, POSTGRES_URL, uniqueNamespace } from "../helpers/brokers.js";
import { amqpAvailable, deleteNamespace as deleteAmqpNamespace } from "./amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./amqp/broker-lock.js";
import {
  deleteEntityObjects,
  deleteNamespace as deleteNatsNamespace,
  natsAvailable,
} from "./nats/nats-helpers.js";

const exec = promisify(execFile);
const example = (args: string[], env: Record<string, string>) =>
  exec(process.execPath, ["--import", "tsx", "examples/entities.ts", ...args], {
    timeout: 120_000,
    env: {
      ...process.env,
      FASTAGENTIC_TRANSPORT: "",
      FASTAGENTIC_LOG_LEVEL: "error",
      PAY_WINDOW_MS: "800",
      ...env,
    },
  });

function expectTheStory(stdout: string): void {
  expect(stdout).toMatch(/o-\w+-1: awaitingPayment, total 15, version 3/);
  expect(stdout).toMatch(/o-\w+-1: paid \(status done\)/);
  expect(stdout).toMatch(/o-\w+-1: rejected ADD_ITEM \(FA_ENTITY_REJECTED\): the order is "paid"/);
  expect(stdout).toMatch(/o-\w+-2: cancelled after the pay window/);
  expect(stdout).toMatch(/"value":"cancelled".*"status":"done","version":3/);
}

describe("examples/entities.ts", () => {
  it("runs in memory, the emitted events on the bus", async () => {
    const { stdout } = await example([], {});
    expectTheStory(stdout);
    expect(stdout).toMatch(/bus: order\.paid \{"total":15\}/);
    expect(stdout).toMatch(/bus: order\.cancelled/);
  }, 150_000);

  it("runs on NATS, state in JetStream KV", async ({ skip }) => {
    if (!(await natsAvailable())) skip();
    const namespace = uniqueNamespace("exent");
    try {
      expectTheStory((await example([NATS_URL], { EXAMPLE_NAMESPACE: namespace })).stdout);
    } finally {
      await deleteEntityObjects(namespace);
      await deleteNatsNamespace(namespace);
    }
  }, 150_000);

  describe("on RabbitMQ", () => {
    let release: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      if (await amqpAvailable()) release = await lockBroker();
    }, BROKER_LOCK_WAIT_MS + 10_000);
    afterAll(async () => release?.());

    it("runs on RabbitMQ, state in PostgreSQL", async ({ skip }) => {
      if (!release) skip();
      const namespace = uniqueNamespace("fa-exent-");
      const table = namespace.replaceAll("-", "_");
      try {
        const { stdout } = await example([AMQP_URL], {
          EXAMPLE_NAMESPACE: namespace,
          FASTAGENTIC_STATE_STORE: `${POSTGRES_URL}?table=${table}`,
        });
        expectTheStory(stdout);
      } finally {
        await deleteAmqpNamespace(namespace);
        const store = new PostgresStateStore({ connectionString: POSTGRES_URL, table });
        await store.dropTable();
        await store.close();
      }
    }, 150_000);
  });
});
