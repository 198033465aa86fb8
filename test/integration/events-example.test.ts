/**
 * examples/events: an API process publishing, billing (one process) and shipping (two competing
 * processes) reacting in their groups, on each broker. The example asserts nothing itself; this
 * checks what it prints.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL, brokerAvailable, NATS_URL } from "../helpers/brokers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./amqp/broker-lock.js";

const run = promisify(execFile);

async function example(url: string): Promise<string> {
  const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "examples/events/run.ts", url], {
    timeout: 120_000,
    env: { ...process.env, FASTAGENTIC_LOG_LEVEL: "error", ORDERS: "40" },
  });
  return stdout + stderr;
}

function check(out: string): void {
  expect(out).toContain("api published 80 events for 40 orders");
  expect(out).toContain("billing: 40/40 orders charged");
  expect(out).toContain("shipping: 80/80 events, shared by 2 processes");
  const shares = [...out.matchAll(/^ {2}shipping \d+: (\d+)$/gm)].map((m) => Number(m[1]));
  expect(shares).toHaveLength(2);
  expect(shares.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(80);
}

describe("examples/events on NATS", () => {
  it("gives every event to billing and to shipping, whose two processes share them", async ({ skip }) => {
    const url = new URL(NATS_URL);
    if (!(await brokerAvailable("NATS", url.hostname, Number(url.port || 4222)))) skip();
    check(await example(NATS_URL));
  }, 150_000);
});

describe("examples/events on RabbitMQ", () => {
  let release: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    if (await brokerAvailable("RabbitMQ", "127.0.0.1", 5672)) release = await lockBroker();
  }, BROKER_LOCK_WAIT_MS + 10_000);
  afterAll(async () => release?.());

  it("gives every event to billing and to shipping, whose two processes share them", async ({ skip }) => {
    if (!release) skip();
    check(await example(AMQP_URL));
  }, 150_000);
});
