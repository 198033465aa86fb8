import { ConfigError, InMemoryTransport, SimulatedClock, transportFromUrl } from "fastagentic";
import { describe, expect, it } from "vitest";
import { Collector } from "../helpers/async.js";

describe("transportFromUrl", () => {
  it("returns the embedded transport for memory://, and by default", () => {
    expect(transportFromUrl("memory://")).toBeInstanceOf(InMemoryTransport);
    const saved = process.env["FASTAGENTIC_TRANSPORT"];
    delete process.env["FASTAGENTIC_TRANSPORT"];
    expect(transportFromUrl(undefined)).toBeInstanceOf(InMemoryTransport);
    if (saved !== undefined) process.env["FASTAGENTIC_TRANSPORT"] = saved;
  });

  it("knows broker URLs by scheme without connecting", () => {
    expect(transportFromUrl("nats://127.0.0.1:4222").kind).toBe("nats");
    expect(transportFromUrl("amqp://guest:guest@127.0.0.1:5672").kind).toBe("amqp");
    expect(transportFromUrl("nats://127.0.0.1:4222").state).toBe("idle");
  });

  it("rejects what is not a transport URL, saying which ones are", () => {
    expect(() => transportFromUrl("localhost:4222")).toThrow(ConfigError);
    expect(() => transportFromUrl("redis://127.0.0.1:6379")).toThrow(/Unsupported transport scheme "redis:"/);
    expect(() => transportFromUrl("not a url")).toThrow(/is not a transport URL. Use memory:\/\//);
  });

  it("never puts a password in an error message", () => {
    const error = (() => {
      try {
        transportFromUrl("redis://user:s3cret@127.0.0.1:6379");
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error?.message).not.toContain("s3cret");
    expect(error?.message).toContain("***");
  });
});

describe("InMemoryTransport specifics", () => {
  it("delays delivery on the injected clock", async () => {
    const clock = new SimulatedClock();
    const t = new InMemoryTransport({ clock });
    const got = new Collector<string>();
    await t.consume(
      ["q.d"],
      (d) => {
        got.push(new TextDecoder().decode(d.body));
        void d.ack();
      },
      { concurrency: 1 },
    );
    await t.enqueue("q.d", new TextEncoder().encode("later"), { priority: 5, delayMs: 5000 });
    await t.enqueue("q.d", new TextEncoder().encode("now"), { priority: 0 });
    await got.waitFor(1);
    expect(await t.depth("q.d")).toBe(1);
    await clock.advance(4999);
    expect(got.items).toEqual(["now"]);
    await clock.advance(1);
    await got.waitFor(2);
    expect(got.items).toEqual(["now", "later"]);
  });

  it("remembers dedupIds for dedupWindowMs, and at most dedupMaxEntries of them", async () => {
    const clock = new SimulatedClock();
    const t = new InMemoryTransport({ clock, dedupWindowMs: 1000, dedupMaxEntries: 3 });
    const send = (id: string) => t.enqueue("q.dd", new Uint8Array([1]), { priority: 5, dedupId: id });
    await send("a");
    await send("a");
    expect(await t.depth("q.dd")).toBe(1);
    await clock.advance(999);
    await send("a"); // still inside the window of the first
    expect(await t.depth("q.dd")).toBe(1);
    await clock.advance(1);
    await send("a"); // the window has passed: a new message
    expect(await t.depth("q.dd")).toBe(2);
    for (const id of ["b", "c", "d"]) await send(id); // "a" is now the oldest of four: forgotten
    await send("a");
    expect(await t.depth("q.dd")).toBe(6);
    await send("d");
    expect(await t.depth("q.dd")).toBe(6);
  });

  it("bounds dead-letter queues and counts what it dropped", async () => {
    const t = new InMemoryTransport({ maxDeadLetters: 2 });
    const seen = new Collector<number>();
    await t.consume(
      ["q.x"],
      (d) => {
        void d.deadLetter("bad").then(() => seen.push(1));
      },
      { concurrency: 10 },
    );
    for (let i = 0; i < 3; i++) await t.enqueue("q.x", new Uint8Array([i]), { priority: 5 });
    await seen.waitFor(3);
    expect(await t.depth("dead.q.x")).toBe(2);
    expect(t.droppedDeadLetters).toBe(1);
  });
});
