/** HTTP helpers of the tests of test/integration/hostile: the one error shape, raw sockets. */
import { connect } from "node:net";
import { expect } from "vitest";
import { deferred } from "../../helpers/async.js";

/** Asserts the one error shape: `{ error: { code, message } }` and nothing of Fastify's own. */
export function expectErrorBody(text: string, context: string): { code: string; message: string } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${context}: the error body is not JSON: ${text.slice(0, 200)}`);
  }
  expect(body, context).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
  return (body as { error: { code: string; message: string } }).error;
}

/** Sends raw bytes on a new connection; resolves with everything the server sent before closing. */
export function raw(base: string, bytes: string): Promise<string> {
  const url = new URL(base);
  const done = deferred<string>();
  let received = "";
  const socket = connect({ host: url.hostname, port: Number(url.port) }, () => socket.write(bytes));
  socket.on("data", (chunk) => {
    received += chunk.toString();
  });
  socket.on("close", () => done.resolve(received));
  socket.on("error", () => {});
  return done.promise;
}
