/**
 * Credentials stay out of every message, stack and chained cause where a transport URL is echoed,
 * including URLs that do not parse and tokens written as the user part of a NATS URL.
 */
import { inspect } from "node:util";
import { ConfigError, ConnectionError, transportFromUrl } from "fastagentic";
import { describe, expect, it } from "vitest";
import { redactUrl } from "../../src/url-redaction.js";
import { AmqpTransport } from "../../transports/amqp/index.js";
import { NatsTransport } from "../../transports/nats/index.js";

const SECRET = "S3cr3t";

/** The error `fn` throws, with its stack and causes, as a user would see it logged. */
function thrownText(fn: () => unknown): { error: unknown; text: string } {
  try {
    fn();
  } catch (error) {
    return { error, text: inspect(error, { depth: 10 }) };
  }
  throw new Error("expected a throw");
}

describe("credentials in transport URLs", () => {
  const bad = [
    `nats://u:${SECRET}@127.0.0.1:notaport`,
    `nats://${SECRET}@127.0.0.1:notaport`,
    `amqp://u:${SECRET}@127.0.0.1:notaport`,
    `amqp://u:${SECRET}@/vhost`,
    `amqp://u:${SECRET}@:5672`,
    `ftp://u:${SECRET}@127.0.0.1`,
    `u:${SECRET}@127.0.0.1:4222`,
    `nats://u:${SECRET.slice(0, 3)}/${SECRET.slice(3)}@127.0.0.1:x`,
    `nats://u:${SECRET}@[::1`,
  ];

  for (const url of bad) {
    it(`transportFromUrl(${JSON.stringify(url)}): a ConfigError that hides the password`, () => {
      const { error, text } = thrownText(() => transportFromUrl(url));
      expect(error).toBeInstanceOf(ConfigError);
      expect(text).toContain("***");
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(SECRET.slice(3));
    });
  }

  it("new AmqpTransport({ url }) hides it too", () => {
    const { error, text } = thrownText(() => new AmqpTransport({ url: `amqp://u:${SECRET}@127.0.0.1:x` }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(text).not.toContain(SECRET);
  });

  it("a connection error names the server without its credentials", async () => {
    const transport = new NatsTransport({
      servers: [`nats://u:${SECRET}@127.0.0.1:1`],
      connectTimeoutMs: 1000,
    });
    const error = await transport.connect().catch((e: unknown) => e);
    await transport.close();
    expect(error).toBeInstanceOf(ConnectionError);
    expect(inspect(error, { depth: 10 })).toContain("nats://u:***@127.0.0.1:1");
    expect(inspect(error, { depth: 10 })).not.toContain(SECRET);
  });

  it("redactUrl keeps what helps (scheme, user, host, port, path) and hides only the secret", () => {
    expect(redactUrl(`amqp://guest:${SECRET}@rabbit:5672/prod`)).toBe("amqp://guest:***@rabbit:5672/prod");
    expect(redactUrl(`nats://${SECRET}@nats:4222`)).toBe("nats://***@nats:4222");
    expect(redactUrl("amqp://guest@rabbit:5672")).toBe("amqp://guest@rabbit:5672");
    expect(redactUrl("nats://127.0.0.1:4222")).toBe("nats://127.0.0.1:4222");
    expect(redactUrl("127.0.0.1:4222")).toBe("127.0.0.1:4222");
  });
});
