/**
 * Options and URLs of the NATS transport: what a deployment writes, what it gets, and the errors
 * that say what to fix. The checks that need a server use the shared one or a private one.
 */
import {
  ConfigError,
  ConnectionError,
  InvalidNameError,
  StateError,
  transportFromUrl,
  ValidationError,
} from "fastagentic";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { NatsTransport, natsTransportFromUrl } from "../../../transports/nats/index.js";
import { uniqueNamespace } from "../../helpers/brokers.js";
import { natsAvailable, natsServer, streamsOf, testTransport } from "./nats-helpers.js";
import { freePort, PrivateNatsServer, privateNatsServerAvailable } from "./private-server.js";

const enc = (s: string) => new TextEncoder().encode(s);

function fromUrl(url: string, options: Record<string, unknown> = {}): NatsTransport {
  return natsTransportFromUrl(new URL(url), options) as NatsTransport;
}

describe("NATS transport options", () => {
  it("reads servers, credentials and the namespace from a URL", () => {
    const t = fromUrl("nats://alice:s%3Dcret@10.0.0.1:4223?namespace=shop&name=api");
    expect(t.options.servers).toEqual(["nats://10.0.0.1:4223"]);
    expect(t.options.user).toBe("alice");
    expect(t.options.password).toBe("s=cret");
    expect(t.options.namespace).toBe("shop");
    expect(t.options.name).toBe("api");
    expect(t.options.tls).toBeUndefined();
  });

  it("takes a token, several hosts, tls:// and explicit options over the URL", () => {
    const t = fromUrl("tls://s3cr3t@a,b:4300?servers=c:4400,d", { namespace: "explicit", ackWaitMs: 5000 });
    expect(t.options.servers).toEqual(["tls://a:4222", "tls://b:4300", "tls://c:4400", "tls://d:4222"]);
    expect(t.options.token).toBe("s3cr3t");
    expect(t.options.tls).toEqual({});
    expect(t.options.namespace).toBe("explicit");
    expect(t.ackDeadlineMs).toBe(5000);
    const explicit = fromUrl("nats://u:p@h", { token: "t" }).options;
    expect(explicit.token).toBe("t");
    expect(explicit.user).toBeUndefined();
  });

  it("has production defaults", () => {
    const t = new NatsTransport();
    expect(t.options).toMatchObject({
      servers: ["127.0.0.1:4222"],
      namespace: "fastagentic",
      streamsOnClose: "keep",
      ackWaitMs: 30_000,
      duplicateWindowMs: 120_000,
      storage: "file",
      replicas: 1,
    });
    expect(t.kind).toBe("nats");
    expect(t.state).toBe("idle");
    expect(t.maxPayloadBytes).toBeLessThan(1024 * 1024);
  });

  it("refuses options that cannot work, saying what to fix", () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ namespace: "a.b" }, /namespace.*letters, digits/],
      [{ ackwait: 5 }, /Unknown option "ackwait".*Did you mean "ackWaitMs"/],
      [{ ackWaitMs: 10 }, /ackWaitMs" must be an integer from 100/],
      [{ token: "t", user: "u" }, /either "token" or "user"/],
      [{ password: "p" }, /without "user"/],
      [{ streamsOnClose: "drop" }, /"keep" or "delete"/],
      [{ tls: { ca: 1 } }, /"ca" is a string/],
      [{ nkeySeed: "nope" }, /nkey seed/],
      [{ servers: [] }, /server address/],
      [{ reconnectWaitMs: 1000, maxReconnectWaitMs: 100 }, /maxReconnectWaitMs/],
    ];
    for (const [options, message] of cases) {
      let error: unknown;
      try {
        new NatsTransport(options);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(options)).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(message);
    }
    expect(() => fromUrl("nats://h?colour=blue")).toThrow(/Unknown query parameter "colour"/);
    expect(() => fromUrl("tls://h", { tls: false })).toThrow(ConfigError);
    expect(() => new NatsTransport({ password: "hunter2", user: 3 } as never)).toThrow(/got 3/);
    expect(() => new NatsTransport({ token: "" })).toThrow(/\(hidden\)/);
  });

  it("refuses calls before connect() with a StateError", async () => {
    const t = new NatsTransport();
    await expect(t.enqueue("q.a", enc("x"), { priority: 5 })).rejects.toBeInstanceOf(StateError);
    await expect(t.depth("q.a")).rejects.toBeInstanceOf(StateError);
  });

  it("fails connect() with a ConnectionError when nothing listens, and can try again", async () => {
    const port = await freePort();
    const t = new NatsTransport({ servers: [`127.0.0.1:${port}`], connectTimeoutMs: 1000 });
    const states: string[] = [];
    t.onStatus((e) => states.push(e.state));
    const error = await t.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
    expect(t.state).toBe("idle");
    expect(states).toEqual(["connecting", "idle"]);
    await expect(t.connect()).rejects.toBeInstanceOf(ConnectionError);
    await t.close();
    await expect(t.connect()).rejects.toBeInstanceOf(StateError);
  });
});

describe("NATS transport options on a server", () => {
  let ok = false;
  const open: NatsTransport[] = [];

  beforeAll(async () => {
    ok = await natsAvailable();
  });

  afterEach(async () => {
    for (const t of open.splice(0)) await t.close();
  });

  it("refuses a maxPayloadBytes above the server's max_payload minus the header room", async ({ skip }) => {
    if (!ok) skip();
    const t = testTransport({ maxPayloadBytes: 1024 * 1024 });
    open.push(t);
    const error = await t.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/max_payload is 1048576 bytes/);
  });

  it("refuses a server without JetStream, saying how to enable it", async ({ skip }) => {
    if (!privateNatsServerAvailable("the no-JetStream refusal test")) skip();
    const plain = await PrivateNatsServer.start({ jetstream: false });
    try {
      const t = new NatsTransport({ servers: [plain.url] });
      open.push(t);
      const error = await t.connect().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/JetStream disabled.*-js/);
    } finally {
      await plain.destroy();
    }
  });

  it("is reached through transportFromUrl, with several hosts of which one is down", async ({ skip }) => {
    if (!ok) skip();
    const dead = `127.0.0.1:${await freePort()}`;
    const t = transportFromUrl(`nats://${dead},${natsServer}`, {
      namespace: uniqueNamespace("url"),
      streamsOnClose: "delete",
    });
    const states: string[] = [];
    t.onStatus((e) => states.push(e.state));
    expect(t.kind).toBe("nats");
    await t.connect();
    expect(states).toEqual(["connecting", "connected"]);
    expect(t.ackDeadlineMs).toBe(30_000);
    await t.enqueue("q.url", enc("x"), { priority: 5 });
    expect(await t.depth("q.url")).toBe(1);
    await t.close();
    expect(t.state).toBe("closed");
  });

  it("keeps its streams on close by default, and deletes them with streamsOnClose: delete", async ({
    skip,
  }) => {
    if (!ok) skip();
    const namespace = uniqueNamespace("keep");
    const keep = new NatsTransport({ servers: [natsServer], namespace });
    await keep.connect();
    await keep.enqueue("q.kept", enc("stays"), { priority: 5 });
    await keep.close();
    expect(await streamsOf(namespace)).toHaveLength(1);

    const remove = new NatsTransport({ servers: [natsServer], namespace, streamsOnClose: "delete" });
    await remove.connect();
    expect(await remove.depth("q.kept")).toBe(1); // the message survived its producer
    await remove.close();
    expect(await streamsOf(namespace)).toEqual([]);
  });

  it("validates names and headers before anything reaches the server", async ({ skip }) => {
    if (!ok) skip();
    const t = testTransport();
    open.push(t);
    await t.connect();
    await expect(t.consume(["ok", "$JS.API"], () => {}, { concurrency: 1 })).rejects.toBeInstanceOf(
      InvalidNameError,
    );
    await expect(t.subscribe("a.*", () => {})).rejects.toBeInstanceOf(InvalidNameError);
    for (const headers of [
      { "bad name": "x" },
      { "Nats-Msg-Id": "x" },
      { "fa-priority": "1" },
      { ok: "a\nb" },
    ] as Array<Record<string, string>>) {
      await expect(
        t.enqueue("q.h", enc("x"), { priority: 5, headers }),
        JSON.stringify(headers),
      ).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(t.enqueue("q.h", enc("x"), { priority: 256 })).rejects.toBeInstanceOf(ValidationError);
    await expect(t.consume(["q.h"], () => {}, { concurrency: -1 })).rejects.toBeInstanceOf(ConfigError);
  });
});
