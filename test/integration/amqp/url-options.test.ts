/**
 * `transportFromUrl("amqp://…")` and the transport's options: what the URL carries (user,
 * password, vhost, namespace), what is refused with a clear error before any broker call, and
 * what the broker refuses (fast, not after a minute of retries).
 */
import { ConfigError, ConnectionError, InvalidNameError, transportFromUrl } from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AmqpTransport, amqpTransportFromUrl } from "../../../transports/amqp/index.js";
import { AMQP_URL, uniqueNamespace } from "../../helpers/brokers.js";
import { amqpAvailable, amqpUrl, brokerNames, rabbitmqctl, testTransport } from "./amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./broker-lock.js";

const enc = (s: string) => new TextEncoder().encode(s);

describe("AMQP URLs and options", () => {
  it("takes the namespace from ?namespace= or the options, and refuses two different ones", () => {
    const fromQuery = amqpTransportFromUrl(new URL("amqp://u:p@broker.example:5673/prod?namespace=shop"), {});
    expect(fromQuery).toBeInstanceOf(AmqpTransport);
    expect((fromQuery as AmqpTransport).namespace).toBe("shop");
    const fromOptions = amqpTransportFromUrl(new URL("amqp://u:p@broker.example"), { namespace: "shop" });
    expect((fromOptions as AmqpTransport).namespace).toBe("shop");
    expect(() => amqpTransportFromUrl(new URL("amqp://h?namespace=a"), { namespace: "b" })).toThrow(
      ConfigError,
    );
  });

  it("hides the password in what it reports", () => {
    const t = new AmqpTransport({ url: "amqp://user:s3cret@broker.example:5672/vhost" });
    expect(t.url).not.toContain("s3cret");
    expect(t.url).toContain("user:***@broker.example");
  });

  it("refuses unknown options and query parameters, naming them", () => {
    expect(() => amqpTransportFromUrl(new URL("amqp://h"), { namspace: "typo" })).toThrow(/namspace/);
    expect(() => amqpTransportFromUrl(new URL("amqp://h?prefetch=5"), {})).toThrow(/prefetch/);
    expect(() => new AmqpTransport({ maxPayloadBytes: 512 * 1024 * 1024 })).toThrow(ConfigError);
    expect(() => new AmqpTransport({ publishTimeoutMs: 0 })).toThrow(/publishTimeoutMs/);
    for (const bad of [0, 65, 1.5]) {
      expect(() => new AmqpTransport({ maxTasksPerMessage: bad })).toThrow(
        /maxTasksPerMessage must be an integer from 1 to 64/,
      );
    }
    expect(new AmqpTransport({ maxTasksPerMessage: 1 })).toBeInstanceOf(AmqpTransport);
  });

  it("takes queueType (quorum or classic) and deliveryLimit from the URL or the options, typed", () => {
    const fromQuery = amqpTransportFromUrl(new URL("amqp://h?queueType=quorum&deliveryLimit=5"), {});
    expect((fromQuery as AmqpTransport).names.queueType).toBe("quorum");
    expect((fromQuery as AmqpTransport).names.deliveryLimit).toBe(5);
    const fromOptions = amqpTransportFromUrl(new URL("amqp://h"), { queueType: "quorum" });
    expect((fromOptions as AmqpTransport).names.queueType).toBe("quorum");
    expect((fromOptions as AmqpTransport).names.deliveryLimit).toBe(20);
    expect(new AmqpTransport().names.queueType).toBe("classic");
    expect(() =>
      amqpTransportFromUrl(new URL("amqp://h?queueType=quorum"), { queueType: "classic" }),
    ).toThrow(/queueType "quorum" but the options say "classic"/);
    expect(() => amqpTransportFromUrl(new URL("amqp://h?queueType=stream"), {})).toThrow(
      /queueType must be "classic" or "quorum"; got "stream"/,
    );
    for (const bad of [0, 1.5, 1001]) {
      expect(() => new AmqpTransport({ queueType: "quorum", deliveryLimit: bad })).toThrow(
        /deliveryLimit must be an integer from 1 to 1000/,
      );
    }
    expect(() => amqpTransportFromUrl(new URL("amqp://h?queueType=quorum&deliveryLimit=x"), {})).toThrow(
      ConfigError,
    );
    expect(() => new AmqpTransport({ deliveryLimit: 5 })).toThrow(/quorum queues only/);
  });

  it("passes TLS options through for amqps:// and refuses them for amqp://", () => {
    const tls = { rejectUnauthorized: true, servername: "broker.example" };
    expect(amqpTransportFromUrl(new URL("amqps://u:p@broker.example"), { tls })).toBeInstanceOf(
      AmqpTransport,
    );
    expect(() => amqpTransportFromUrl(new URL("amqp://u:p@broker.example"), { tls })).toThrow(/amqps/);
  });

  it("refuses namespaces RabbitMQ reserves or cannot hold, and names too long for it", () => {
    for (const bad of ["amq", "amq.app", "AMQ.x", "a b", "a:b", "a/b", "", "a..b", "a.b", "n".repeat(33)]) {
      expect(() => new AmqpTransport({ namespace: bad }), bad).toThrow(ConfigError);
    }
    const t = new AmqpTransport({ namespace: "n".repeat(32) });
    const long = Array.from({ length: 5 }, () => "x".repeat(48)).join(".");
    return expect(t.enqueue(long, enc("x"), { priority: 5 })).rejects.toBeInstanceOf(InvalidNameError);
  });

  describe("against the broker", () => {
    let ok = false;
    let release: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      ok = await amqpAvailable();
      if (ok) release = await lockBroker();
    }, BROKER_LOCK_WAIT_MS + 10_000);

    afterAll(async () => {
      await release?.();
    });

    it("connects to the vhost of the URL", async ({ skip }) => {
      if (!ok) skip();
      const vhost = uniqueNamespace("fa-vhost-");
      await rabbitmqctl("add_vhost", vhost);
      try {
        await rabbitmqctl("set_permissions", "-p", vhost, amqpUrl.username || "guest", ".*", ".*", ".*");
        const url = new URL(AMQP_URL);
        url.pathname = `/${encodeURIComponent(vhost)}`;
        url.searchParams.set("namespace", "app");
        const t = transportFromUrl(url.href, {});
        await t.connect();
        await t.enqueue("q.in-vhost", enc("x"), { priority: 5 });
        expect(await t.depth("q.in-vhost")).toBe(1);
        const listed = await rabbitmqctl("list_queues", "-p", vhost, "name", "--quiet", "--no-table-headers");
        expect(listed).toContain("app.q.in-vhost");
        await t.close();
      } finally {
        await rabbitmqctl("delete_vhost", vhost);
      }
    });

    it("fails fast, not retryable, when the broker refuses the credentials or the vhost", async ({
      skip,
    }) => {
      if (!ok) skip();
      for (const path of ["", "/no-such-vhost"]) {
        const url = new URL(AMQP_URL);
        if (path) url.pathname = path;
        else url.password = "wrong-password";
        const t = testTransport({ url: url.href, connectTimeoutMs: 60_000 });
        const error = await t.connect().catch((e: unknown) => e);
        expect(error, path || "bad password").toBeInstanceOf(ConnectionError);
        expect((error as ConnectionError).retryable).toBe(false);
        expect((error as Error).message).not.toContain("wrong-password");
        expect(t.state).toBe("idle");
        await t.close();
      }
    });

    it("reports an unreachable broker as a retryable ConnectionError after connectTimeoutMs", async ({
      skip,
    }) => {
      if (!ok) skip();
      const t = testTransport({ url: "amqp://guest:guest@127.0.0.1:1", connectTimeoutMs: 300 });
      const error = await t.connect().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectionError);
      expect((error as ConnectionError).retryable).toBe(true);
      await t.close();
      expect(await brokerNames("queues", t.namespace)).toEqual([]);
    });
  });
});
