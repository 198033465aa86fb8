/**
 * examples/multi-process: two worker processes started with the CLI, a coordinator in a third,
 * on each broker. The example itself asserts nothing; this checks what it prints and how it exits.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL, amqpAvailable, NATS_URL, natsAvailable } from "../helpers/brokers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./amqp/broker-lock.js";

const run = promisify(execFile);

async function example(url: string): Promise<string> {
  const { stdout, stderr } = await run(
    process.execPath,
    ["--import", "tsx", "examples/multi-process/run.ts", url],
    {
      timeout: 90_000,
      env: { ...process.env, FASTAGENTIC_LOG_LEVEL: "error" },
    },
  );
  return stdout + stderr;
}

describe("examples/multi-process on NATS", () => {
  it("runs 200 tasks on two worker processes, which then drain and exit 0", async ({ skip }) => {
    if (!(await natsAvailable())) skip();
    const out = await example(NATS_URL);
    expect(out).toContain("200/200 completed");
    expect(out.match(/^ {2}\d+@\S+: \d+$/gm)).toHaveLength(2);
    expect(out).toContain("worker processes drained and exited with 0, 0");
  }, 120_000);
});

describe("examples/multi-process on RabbitMQ", () => {
  let release: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    if (await amqpAvailable()) release = await lockBroker();
  }, BROKER_LOCK_WAIT_MS + 10_000);
  afterAll(async () => release?.());

  it("runs 200 tasks on two worker processes, which then drain and exit 0", async ({ skip }) => {
    if (!release) skip();
    const out = await example(AMQP_URL);
    expect(out).toContain("200/200 completed");
    expect(out.match(/^ {2}\d+@\S+: \d+$/gm)).toHaveLength(2);
    expect(out).toContain("worker processes drained and exited with 0, 0");
  }, 120_000);
});
