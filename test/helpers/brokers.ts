import { createConnection } from "node:net";

export const NATS_URL = process.env["NATS_URL"] ?? "nats://127.0.0.1:4222";
export const AMQP_URL = process.env["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672";
export const POSTGRES_URL = process.env["POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";

/** True when something accepts TCP connections at host:port. */
export function reachable(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * How long CI waits for a broker that is down before failing: another test file may be restarting
 * the shared RabbitMQ under the broker lock (test/integration/amqp/broker-lock.ts) just when this
 * file looks, and the files check before they queue for the lock.
 */
const CI_DOWN_WAIT_MS = Number(process.env["FA_BROKER_DOWN_WAIT_MS"] ?? "") || 45_000; // within the default 60 s hook timeout

/**
 * Whether the broker tests run. In CI a missing broker is a failure (after waiting up to
 * `CI_DOWN_WAIT_MS` for it to come back); on a laptop the tests are skipped, and this says so loudly.
 */
export async function brokerAvailable(name: string, host: string, port: number): Promise<boolean> {
  if (await reachable(host, port)) return true;
  const message = `${name} is not reachable at ${host}:${port}`;
  if (process.env["CI"]) {
    const deadline = Date.now() + CI_DOWN_WAIT_MS;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      if (await reachable(host, port)) return true;
    }
    throw new Error(
      `${message} (waited ${CI_DOWN_WAIT_MS} ms): CI requires it (see .ci/run for how it is started).`,
    );
  }
  console.warn(`\n*** SKIPPING ${name} TESTS: ${message}. Start it to run them. ***\n`);
  return false;
}

/** Whether the NATS server of NATS_URL runs (skips loudly on a laptop without it, fails in CI). */
export function natsAvailable(): Promise<boolean> {
  const url = new URL(NATS_URL);
  return brokerAvailable("NATS", url.hostname, Number(url.port || 4222));
}

/** Whether the RabbitMQ of AMQP_URL runs (skips loudly on a laptop without it, fails in CI). */
export function amqpAvailable(): Promise<boolean> {
  const url = new URL(AMQP_URL);
  return brokerAvailable("RabbitMQ", url.hostname, Number(url.port || 5672));
}

/** A namespace unique to one test run, so tests never collide on a shared broker. */
export function uniqueNamespace(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
