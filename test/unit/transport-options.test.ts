/**
 * One validation for every transport: the same namespaces, unknown options and URL query
 * parameters are refused by memory://, nats:// and amqp:// alike, when the transport is created
 * (not at connect), with a ConfigError; malformed percent-encodings are ConfigErrors, not URIErrors;
 * a task no worker could ever carry (more tags than a worker can have) is refused at submit.
 */
import {
  ConfigError,
  Coordinator,
  InMemoryTransport,
  silentLogger,
  TaskQueue,
  transportFromUrl,
  ValidationError,
  Worker,
} from "fastagentic";
import { describe, expect, it } from "vitest";
import { AmqpTransport } from "../../transports/amqp/index.js";
import { NatsTransport } from "../../transports/nats/index.js";

const URLS = ["memory://", "nats://127.0.0.1:4222", "amqp://guest:guest@127.0.0.1:5672"];
const BAD_NAMESPACES = [">", "", "a b", "a.b", "a*", "_INBOX", "-x", "amq", "AMQ", "x".repeat(33), "é"];

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("one validation for every transport", () => {
  for (const url of URLS) {
    const scheme = new URL(url).protocol;
    it(`${scheme} refuses the same namespaces, as an option or in the URL`, () => {
      for (const ns of BAD_NAMESPACES) {
        expect(refusal(() => transportFromUrl(url, { namespace: ns })).message).toMatch(/Invalid namespace/);
        const inUrl = `${url}${url.endsWith("/") ? "" : "/"}?namespace=${encodeURIComponent(ns)}`;
        expect(refusal(() => transportFromUrl(inUrl)).message, inUrl).toMatch(/Invalid namespace/);
      }
      expect(transportFromUrl(url, { namespace: "shop-1_a" }).kind).toBe(scheme.slice(0, -1));
    });

    it(`${scheme} refuses unknown options and query parameters when created`, () => {
      expect(refusal(() => transportFromUrl(url, { bogus: 1 })).message).toMatch(/"bogus"/);
      const withParam = `${url}${url.endsWith("/") ? "" : "/"}?bogus=1`;
      expect(refusal(() => transportFromUrl(withParam)).message).toMatch(/"bogus"/);
    });
  }

  it("each constructor applies the same namespace rule", () => {
    for (const ns of BAD_NAMESPACES) {
      refusal(() => new InMemoryTransport({ namespace: ns }));
      refusal(() => new NatsTransport({ namespace: ns }));
      refusal(() => new AmqpTransport({ namespace: ns }));
    }
  });

  it("a malformed percent-encoding in a URL is a ConfigError, not a URIError", () => {
    for (const url of [
      "amqp://u:pw@127.0.0.1:5672/%ZZ",
      "amqp://u%ZZ:pw@127.0.0.1:5672",
      "nats://u:p%ZZ@127.0.0.1:4222",
      "nats://%E0%A4%A@127.0.0.1:4222",
    ]) {
      expect(refusal(() => transportFromUrl(url)).message, url).toMatch(/malformed percent-encoding/);
    }
  });

  it("a number in a URL parameter that is not one is quoted as given, not shown as NaN", () => {
    for (const [url, param] of [
      ["nats://127.0.0.1:4222?finishedTtlMs=abc", "finishedTtlMs"],
      ["nats://127.0.0.1:4222?finishedTtlMs=", "finishedTtlMs"],
      ["nats://127.0.0.1:4222?finishedTtlMs=1e3", "finishedTtlMs"],
      ["amqp://guest:guest@127.0.0.1:5672?heartbeat=abc", "heartbeat"],
      ["amqp://guest:guest@127.0.0.1:5672?heartbeat=", "heartbeat"],
      ["amqp://guest:guest@127.0.0.1:5672?frameMax=abc", "frameMax"],
      ["amqp://guest:guest@127.0.0.1:5672?frameMax=100", "frameMax"],
    ] as const) {
      const message = refusal(() => transportFromUrl(url)).message;
      const given = new URL(url).searchParams.get(param) as string;
      expect(message, url).toContain(param);
      expect(message, url).toContain(JSON.stringify(given));
      expect(message, url).not.toMatch(/NaN/);
    }
    expect(transportFromUrl("nats://127.0.0.1:4222?finishedTtlMs=3600000").kind).toBe("nats");
    expect(transportFromUrl("amqp://guest:guest@127.0.0.1:5672?heartbeat=5&frameMax=131072").kind).toBe(
      "amqp",
    );
  });

  it("memory:// takes no host, credentials or path, and bounded options", () => {
    expect(refusal(() => transportFromUrl("memory://somewhere")).message).toMatch(/takes no host/);
    expect(refusal(() => transportFromUrl("memory://u:p@x")).message).not.toContain(":p@");
    expect(refusal(() => transportFromUrl("memory://", { maxPayloadBytes: 1e12 })).message).toMatch(
      /maxPayloadBytes must be an integer from 1024/,
    );
    expect(refusal(() => transportFromUrl("memory://?namespace=a", { namespace: "b" })).message).toMatch(
      /give it once/,
    );
  });
});

describe("tasks that can never run", () => {
  const seven = ["a", "b", "c", "d", "e", "f", "g"];

  it("a task with more tags than a worker can carry is refused at submit, on every transport", async () => {
    for (const url of URLS) {
      // Refused before anything is sent: the broker transports are not even connected.
      const queue = new TaskQueue({ transport: transportFromUrl(url) });
      await expect(queue.enqueue({ taskType: "echo", tags: seven }), url).rejects.toThrow(
        /A task with 7 tags can never run: a worker carries at most 6/,
      );
      await queue.close();
    }
    const coordinator = new Coordinator({ config: { minWorkers: 1 }, logger: silentLogger });
    coordinator.handler("echo", async (d) => d);
    await coordinator.start();
    await expect(coordinator.submit("echo", {}, { tags: seven })).rejects.toBeInstanceOf(ValidationError);
    await coordinator.stop();
  });

  it("a worker with more tags than it can carry is refused when created", () => {
    expect(refusal(() => new Worker({ config: { tags: seven } })).message).toMatch(/at most 6 tags/);
  });
});
