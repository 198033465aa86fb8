/** The runnable examples run, as a user would start them, and print what they promise. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL, amqpAvailable, NATS_URL, natsAvailable } from "../helpers/brokers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./amqp/broker-lock.js";

const exec = promisify(execFile);
const tsx = (file: string, args: string[] = [], env: Record<string, string> = {}) =>
  exec(process.execPath, ["--import", "tsx", file, ...args], {
    timeout: 120_000,
    env: { ...process.env, FASTAGENTIC_TRANSPORT: "", FASTAGENTIC_LOG_LEVEL: "error", ...env },
  });

describe("npm run demo (examples/quickstart.ts)", () => {
  it("runs the quick start, then thousands of tasks with retries, failures and scaling, losing none", async () => {
    const { stdout: out, stderr } = await tsx("examples/quickstart.ts", [], { DEMO_TASKS: "3000" });
    const stdout = out + stderr; // the progress bar is on stderr
    expect(stdout).toContain('submit(\'process_document\')        → {"processed":true,"pages":10}');
    expect(stdout).toMatch(/3000\/3000 tasks/);
    expect(stdout).toMatch(/lost \/ duplicated\s*│ 0 \/ 0/);
    expect(stdout).toMatch(/scaling events\s*│ 2→/);
    const retried = Number(/attempts retried\s*│ (\d+)/.exec(stdout)?.[1]);
    expect(retried).toBeGreaterThan(0);
    // The numbers add up: the load's outcomes are its 3000 tasks (the quick start's are not counted),
    // and so are the rows of the table by type.
    const [, completed, failed] = /completed \/ failed\s*│ (\d+) \/ (\d+) of 3000/.exec(stdout) ?? [];
    expect(Number(completed) + Number(failed)).toBe(3000);
    const byType = [...stdout.matchAll(/│ (\w+)\s*│ (\d+)\s*│ (\d+)\s*│ (\d+)\s*│/g)];
    expect(byType.map((m) => m[1])).toEqual([
      "process_document",
      "generate_summary",
      "call_flaky_api",
      "validate_order",
    ]);
    expect(byType.reduce((n, m) => n + Number(m[2]), 0)).toBe(3000);
    expect(byType.reduce((n, m) => n + Number(m[3]) + Number(m[4]), 0)).toBe(3000);
  }, 150_000);
});

describe("examples/nats.ts", () => {
  it("runs the quick start on NATS JetStream", async ({ skip }) => {
    if (!(await natsAvailable())) skip();
    const { stdout } = await tsx("examples/nats.ts", [NATS_URL]);
    expect(stdout).toContain("processed: true, pages: 10");
    expect(stdout).toContain("status: 'completed'");
  }, 60_000);
});

describe("examples/amqp.ts", () => {
  let release: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    if (await amqpAvailable()) release = await lockBroker();
  }, BROKER_LOCK_WAIT_MS + 10_000);
  afterAll(async () => release?.());

  it("runs the quick start on RabbitMQ", async ({ skip }) => {
    if (!release) skip();
    const { stdout } = await tsx("examples/amqp.ts", [AMQP_URL]);
    expect(stdout).toContain("processed: true, pages: 10");
    expect(stdout).toContain("status: 'completed'");
  }, 60_000);
});
