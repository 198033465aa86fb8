/**
 * Slow and idle clients cannot hold the App's server: a body that never finishes, headers that
 * never finish and idle keep-alive connections are closed by the server, connections beyond
 * `maxConnections` are refused, and the server goes on answering. Real sockets; every wait is for
 * the server to close a socket, bounded by the hang guard (no timing assertions).
 */
import { connect, type Socket } from "node:net";
import { App, ConfigError, Coordinator, silentLogger } from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deferred, HANG_GUARD_MS } from "../../helpers/async.js";

let app: App;
let base: URL;
const MAX_CONNECTIONS = 10;

beforeAll(async () => {
  const coordinator = new Coordinator({ config: { minWorkers: 1, autoScale: false }, logger: silentLogger });
  coordinator.handler("echo", async (data) => data);
  app = new App({
    appLogger: silentLogger,
    headersTimeoutMs: 1000,
    requestTimeoutMs: 2000,
    keepAliveTimeoutMs: 300,
    maxConnections: MAX_CONNECTIONS,
  });
  app.onStartup(() => coordinator.start());
  app.onShutdown(() => coordinator.stop());
  app.mountCoordinator(coordinator);
  base = new URL(await app.listen({ port: 0 }));
});

afterAll(async () => {
  await app.close();
});

interface SlowClient {
  socket: Socket;
  /** Everything the server sent, once it closed the connection (rejects after the hang guard). */
  closed: Promise<string>;
}

function slowClient(bytes: string): Promise<SlowClient> {
  const connected = deferred<SlowClient>();
  const ended = deferred<string>();
  let received = "";
  const socket = connect({ host: base.hostname, port: Number(base.port) }, () => {
    socket.write(bytes);
    connected.resolve({ socket, closed: ended.promise });
  });
  const guard = setTimeout(() => {
    socket.destroy();
    ended.reject(new Error(`hang guard: the server left a slow client open (${bytes.slice(0, 40)}…)`));
  }, HANG_GUARD_MS);
  socket.on("data", (chunk) => {
    received += chunk.toString();
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    clearTimeout(guard);
    ended.resolve(received);
  });
  return connected.promise;
}

const UNFINISHED_BODY =
  "POST /tasks HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";

describe("slow clients", () => {
  it("a body that never finishes: the server answers 408 and closes, for every such client", async () => {
    const clients = await Promise.all(
      Array.from({ length: MAX_CONNECTIONS }, () => slowClient(UNFINISHED_BODY)),
    );
    for (const answer of await Promise.all(clients.map((c) => c.closed))) {
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(answer).toContain('"code":"FA_REQUEST_TIMEOUT"');
    }
  });

  it("headers that never finish are closed too", async () => {
    const client = await slowClient("GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ");
    expect(await client.closed).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("an idle keep-alive connection is closed after its request", async () => {
    const client = await slowClient("GET /health HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\n\r\n");
    expect(await client.closed).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("connections beyond maxConnections are refused at once, and the server goes on", async () => {
    const holding = await Promise.all(
      Array.from({ length: MAX_CONNECTIONS }, () => slowClient(UNFINISHED_BODY)),
    );
    const extra = await Promise.all(Array.from({ length: 5 }, () => slowClient(UNFINISHED_BODY)));
    // Refused without an answer while the first ones still hold their connections.
    expect(await Promise.all(extra.map((c) => c.closed))).toEqual(["", "", "", "", ""]);
    await Promise.all(holding.map((c) => c.closed));
    const response = await fetch(new URL("/health", base));
    expect(response.status).toBe(200);
  });
});

describe("server limits", () => {
  it("has safe defaults", async () => {
    const plain = new App({ appLogger: silentLogger });
    const server = plain.server.server;
    expect(server.requestTimeout).toBe(30_000);
    expect(server.headersTimeout).toBe(10_000);
    expect(server.keepAliveTimeout).toBe(5_000);
    expect(server.maxConnections).toBe(1_000);
    expect(server.maxRequestsPerSocket).toBe(1_000);
    await plain.close();
  });

  it("refuses bad limits with a ConfigError naming the option", () => {
    expect(() => new App({ requestTimeoutMs: 2 ** 31 })).toThrow(/AppOptions.requestTimeoutMs must be/);
    expect(() => new App({ maxConnections: 0 })).toThrow(ConfigError);
    expect(() => new App({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 })).toThrow(
      /headersTimeoutMs \(5000\) is above requestTimeoutMs/,
    );
    expect(() => new App({ requestTimeout: 5 } as never)).toThrow(/Did you mean "requestTimeoutMs"/);
  });
});
