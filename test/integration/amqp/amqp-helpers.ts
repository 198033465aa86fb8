/**
 * Helpers of the RabbitMQ tests: a transport in a namespace of its own, the broker's CLI, and a
 * sweep that deletes whatever a namespace left behind on the broker.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { connect } from "amqplib";
import { silentLogger } from "../../../src/logger.js";
import { AmqpTransport, type AmqpTransportOptions } from "../../../transports/amqp/index.js";
import { Collector } from "../../helpers/async.js";
import { AMQP_URL, uniqueNamespace } from "../../helpers/brokers.js";

const run = promisify(execFile);

export const amqpUrl = new URL(AMQP_URL);

export { amqpAvailable } from "../../helpers/brokers.js";

/** A transport in a fresh namespace that deletes what it declared when it closes. */
export function testTransport(options: AmqpTransportOptions = {}): AmqpTransport {
  return new AmqpTransport({
    url: AMQP_URL,
    namespace: uniqueNamespace("fa-test-"),
    deleteOnClose: true,
    logger: silentLogger,
    ...options,
  });
}

/** Runs rabbitmqctl; rejects with its output when it fails. */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run("rabbitmqctl", args, { timeout: 120_000 });
  return stdout;
}

/** Names of the queues (or exchanges) on the broker whose name starts with `prefix`. */
export async function brokerNames(kind: "queues" | "exchanges", prefix: string): Promise<string[]> {
  const out = await rabbitmqctl(`list_${kind}`, "name", "--quiet", "--no-table-headers");
  return out
    .split("\n")
    .map((line) => line.trim())
    .filter((name) => name.startsWith(prefix));
}

/** Deletes every queue and exchange of a namespace (for tests whose transports share one). */
export async function deleteNamespace(namespace: string): Promise<void> {
  const conn = await connect(AMQP_URL);
  try {
    const ch = await conn.createChannel();
    for (const q of await brokerNames("queues", namespace)) await ch.deleteQueue(q);
    for (const x of await brokerNames("exchanges", namespace)) await ch.deleteExchange(x);
    await ch.close();
  } finally {
    await conn.close();
  }
}

export interface LogEntry {
  level: "debug" | "info" | "warn" | "error";
  msg: string;
  fields: Record<string, unknown>;
}

/** A pino-compatible logger that keeps what it is given, to wait on and look at. */
export class CapturingLogger {
  readonly entries = new Collector<LogEntry>();

  debug = (fields: object, msg = "") => this.entries.push({ level: "debug", msg, fields: { ...fields } });
  info = (fields: object, msg = "") => this.entries.push({ level: "info", msg, fields: { ...fields } });
  warn = (fields: object, msg = "") => this.entries.push({ level: "warn", msg, fields: { ...fields } });
  error = (fields: object, msg = "") => this.entries.push({ level: "error", msg, fields: { ...fields } });

  /** Resolves with the first entry whose message contains `text` (bounded by the hang guard). */
  async waitFor(text: string): Promise<LogEntry> {
    for (let n = 1; ; n++) {
      const entries = await this.entries.waitFor(n, `a log entry containing "${text}"`);
      const entry = entries[n - 1] as LogEntry;
      if (entry.msg.includes(text)) return entry;
    }
  }

  matching(text: string): LogEntry[] {
    return this.entries.items.filter((e) => e.msg.includes(text));
  }
}

/** Evaluates an Erlang expression on the broker node; returns what it prints. */
export async function brokerEval(expression: string): Promise<string> {
  return (await rabbitmqctl("eval", expression)).trim();
}

/**
 * Makes sure the broker runs again, whatever a test did to it: `start_app` if its application
 * was stopped, `rabbitmq-server -detached` if the node itself is down.
 */
export async function ensureBrokerRunning(): Promise<void> {
  try {
    await rabbitmqctl("start_app");
  } catch {
    await run("rabbitmq-server", ["-detached"], { timeout: 30_000 });
  }
  await rabbitmqctl("await_startup");
}
