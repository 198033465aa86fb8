/**
 * Faults one client meets while the broker stays up: its connection cut mid-task (through a
 * TCP proxy), publishes during an outage, a queue deleted under a consumer, undecodable and
 * oversize messages. Waits are on events (Collector), each bounded by a hang guard.
 */
import { connect } from "amqplib";
import {
  Coordinator,
  type Delivery,
  PayloadTooLargeError,
  PublishError,
  StateError,
  type TransportStatusEvent,
  Worker,
} from "fastagentic";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { flushPromises } from "../../../src/clock.js";
import { silentLogger } from "../../../src/logger.js";
import type { AmqpTransport } from "../../../transports/amqp/index.js";
import { DEAD_LETTER_REASON_HEADER, deadLetterQueueOf } from "../../../transports/transport.js";
import { Collector } from "../../helpers/async.js";
import { AMQP_URL } from "../../helpers/brokers.js";
import {
  amqpAvailable,
  amqpUrl,
  brokerNames,
  CapturingLogger,
  rabbitmqctl,
  testTransport,
} from "./amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./broker-lock.js";
import { TcpProxy } from "./tcp-proxy.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("AMQP transport faults", () => {
  let ok = false;
  let release: (() => Promise<void>) | undefined;
  let proxy: TcpProxy;
  const open: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    ok = await amqpAvailable();
    if (!ok) return;
    release = await lockBroker();
    proxy = await TcpProxy.start({ host: amqpUrl.hostname, port: Number(amqpUrl.port || 5672) });
  }, BROKER_LOCK_WAIT_MS + 10_000);

  afterEach(async () => {
    proxy?.restore();
    for (const o of open.splice(0).reverse()) await o.close();
  });

  afterAll(async () => {
    await proxy?.close();
    await release?.();
  });

  /** A transport (deleting what it declared on close); `viaProxy` routes it through the proxy. */
  async function transport(options: Parameters<typeof testTransport>[0] = {}, viaProxy = false) {
    const t = testTransport({ ...options, ...(viaProxy ? { url: proxy.url(amqpUrl) } : {}) });
    open.push(t);
    await t.connect();
    return t;
  }

  /** A second transport on the same namespace, straight to the broker (the "other process"). */
  async function peer(of: AmqpTransport) {
    const t = testTransport({ namespace: of.namespace });
    open.push(t);
    await t.connect();
    return t;
  }

  function statuses(t: AmqpTransport) {
    const seen = new Collector<TransportStatusEvent>();
    t.onStatus(seen.push);
    return {
      seen,
      async next(state: string) {
        for (let n = 1; ; n++) {
          const events = await seen.waitFor(n, `status "${state}"`);
          if (events[n - 1]?.state === state) return events[n - 1] as TransportStatusEvent;
        }
      },
    };
  }

  it("redelivers a task whose consumer was cut off mid-task; the stale ack is a no-op", async ({ skip }) => {
    if (!ok) skip();
    const consumer = await transport({}, true);
    const producer = await peer(consumer);
    const status = statuses(consumer);
    const got = new Collector<Delivery>();
    await consumer.consume(["jobs"], got.push, { concurrency: 1 });
    await producer.enqueue("jobs", enc("a"), { priority: 5 });
    const [first] = await got.waitFor(1);
    expect(first!.deliveryCount).toBe(1);

    proxy.cut(); // the broker sees the connection close and puts the unacked task back
    const lost = await status.next("reconnecting");
    expect(lost.error).toBeInstanceOf(Error);
    proxy.restore();
    await status.next("connected");
    // Its handler finishes late: the ack belongs to the dead channel and must not reach the broker
    // (a stale delivery tag would close the new channel with 406, or ack another message).
    await first!.ack();

    // The stale delivery held the only slot until now; the task comes back, counted.
    const [, again] = await got.waitFor(2, "the redelivery");
    expect(dec(again!.body)).toBe("a");
    expect(again!.deliveryCount).toBe(2);
    await again!.ack();
    await producer.enqueue("jobs", enc("b"), { priority: 5 });
    const [, , third] = await got.waitFor(3, "a new task after the reconnection");
    expect(dec(third!.body)).toBe("b");
    expect(third!.deliveryCount).toBe(1);
    await third!.ack();
    expect(await producer.depth("jobs")).toBe(0);
    expect(status.seen.items.filter((e) => e.state === "reconnecting")).toHaveLength(1);
  });

  it("holds publishes during an outage and sends them once the broker is back", async ({ skip }) => {
    if (!ok) skip();
    const client = await transport({}, true);
    const other = await peer(client);
    const status = statuses(client);
    await client.enqueue("held", enc("before"), { priority: 5 });
    proxy.cut();
    await status.next("reconnecting");
    let settled = false;
    const during = client.enqueue("held", enc("during"), { priority: 10 }).finally(() => {
      settled = true;
    });
    // Give a publish that is not held (refused or dropped at once) the time to settle: a few
    // event-loop turns and the round trip the broker would take, with the link still cut.
    await flushPromises();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(settled).toBe(false);
    proxy.restore();
    await during;
    const got = new Collector<string>();
    await other.consume(
      ["held"],
      (d) => {
        got.push(dec(d.body));
        void d.ack();
      },
      { concurrency: 1 },
    );
    expect(await got.waitFor(2)).toEqual(["during", "before"]);
  });

  it("fails a publish with PublishError when an outage outlasts publishTimeoutMs", async ({ skip }) => {
    if (!ok) skip();
    const client = await transport({ publishTimeoutMs: 300 }, true);
    const other = await peer(client);
    const status = statuses(client);
    proxy.cut();
    await status.next("reconnecting");
    const error = await client.enqueue("late", enc("x"), { priority: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishError);
    expect((error as PublishError).retryable).toBe(true);
    proxy.restore();
    await status.next("connected");
    await client.enqueue("late", enc("y"), { priority: 5 });
    expect(await other.depth("late")).toBe(1); // the refused one was not queued behind our back
  });

  it("re-declares a queue deleted under its consumer and keeps consuming", async ({ skip }) => {
    if (!ok) skip();
    const t = await transport();
    const got = new Collector<string>();
    await t.consume(
      ["fragile"],
      (d) => {
        got.push(dec(d.body));
        void d.ack();
      },
      { concurrency: 2 },
    );
    const conn = await connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.deleteQueue(`${t.namespace}.fragile`);
    await conn.close();
    await t.enqueue("fragile", enc("after"), { priority: 5 }); // mandatory: re-declared if missing
    expect(await got.waitFor(1)).toEqual(["after"]);
  });

  it("declares version-2 queues, and uses a queue declared with version 1 as it is, with a warning", async ({
    skip,
  }) => {
    if (!ok) skip();
    const legacy = await transport({ queueVersion: 1 });
    await legacy.enqueue("legacy", enc("old"), { priority: 5 });
    const logger = new CapturingLogger();
    const current = testTransport({ namespace: legacy.namespace, logger });
    open.push(current);
    await current.connect();
    await current.enqueue("fresh", enc("new"), { priority: 5 });
    const got = new Collector<string>();
    await current.consume(
      ["legacy", "fresh"],
      (d) => {
        got.push(dec(d.body));
        void d.ack();
      },
      { concurrency: 2 },
    );
    expect((await got.waitFor(2)).sort()).toEqual(["new", "old"]);
    // The work queue and its dead-letter queue, each once.
    const warned = logger.matching("another storage version").map((e) => e.fields);
    expect(warned).toEqual([
      { queue: `${legacy.namespace}.dead.legacy`, queueVersion: 1 },
      { queue: `${legacy.namespace}.legacy`, queueVersion: 1 },
    ]);
    const listed = await rabbitmqctl("list_queues", "name", "arguments", "--quiet", "--no-table-headers");
    const argsOf = (name: string) => listed.split("\n").find((line) => line.startsWith(`${name}\t`)) ?? "";
    expect(argsOf(`${legacy.namespace}.fresh`)).toContain("x-queue-version");
    expect(argsOf(`${legacy.namespace}.legacy`)).not.toContain("x-queue-version");
  });

  it("dead-letters an undecodable message published straight onto a task queue, and counts it", async ({
    skip,
  }) => {
    if (!ok) skip();
    const t = await transport();
    const worker = new Worker({ transport: t, logger: silentLogger });
    open.push({ close: () => worker.stop({ graceful: false }) });
    worker.handler("echo", async (data: unknown) => data);
    await worker.start();
    const conn = await connect(AMQP_URL);
    const ch = await conn.createConfirmChannel();
    ch.sendToQueue(`${t.namespace}.w2.default`, Buffer.from("{not json"), { persistent: true });
    await ch.waitForConfirms();
    await conn.close();
    const dead = new Collector<Delivery>();
    await t.consume([deadLetterQueueOf("w2.default")], dead.push, { concurrency: 1 });
    const [letter] = await dead.waitFor(1, "the dead letter");
    expect(dec(letter!.body)).toBe("{not json");
    expect(letter!.headers[DEAD_LETTER_REASON_HEADER]).toContain("not valid JSON");
    await letter!.ack();
    expect(worker.malformedMessages).toBe(1);
    expect(await t.depth("w2.default")).toBe(0);
  });

  it("refuses an oversize payload before sending it", async ({ skip }) => {
    if (!ok) skip();
    const t = await transport({ maxPayloadBytes: 64 * 1024 });
    // No worker serves "resize": declared, so that the payload check is what refuses it.
    const client = new Coordinator({
      config: { minWorkers: 0, autoScale: false },
      transport: t,
      logger: silentLogger,
      taskTypes: ["resize"],
    });
    open.push({ close: () => client.stop() });
    await client.start();
    const error = await client
      .submitAsync("resize", { blob: "x".repeat(70 * 1024) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect((error as Error).message).toContain(String(64 * 1024));
    await expect(
      t.enqueue("q.default.resize", new Uint8Array(64 * 1024 + 1), { priority: 5 }),
    ).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(await t.depth("q.default.resize")).toBe(0);
  });

  it("warns when a task's timeout exceeds the broker's consumer timeout", async ({ skip }) => {
    if (!ok) skip();
    const logger = new CapturingLogger();
    const t = await transport({ consumerTimeoutMs: 1000, logger });
    const coordinator = new Coordinator({
      config: { minWorkers: 1, autoScale: false },
      transport: t,
      logger: silentLogger,
    });
    open.push({ close: () => coordinator.stop({ graceful: false }) });
    coordinator.handler("long", async () => "done");
    await coordinator.start();
    expect(await coordinator.submit("long", {}, { timeoutMs: 5000 })).toBe("done");
    const warning = await logger.waitFor("consumer_timeout");
    expect(warning.level).toBe("warn");
    expect(warning.fields).toMatchObject({ taskTimeoutMs: 5000, consumerTimeoutMs: 1000 });
    expect(await coordinator.submit("long", {}, { timeoutMs: 500 })).toBe("done");
    expect(logger.matching("consumer_timeout")).toHaveLength(1);
  });

  it("delays beyond the largest wait bucket, delivering once, after shorter ones sent later", async ({
    skip,
  }) => {
    if (!ok) skip();
    const t = await transport({ delayBucketsMs: [100, 200] });
    await t.enqueue("later", enc("long"), { priority: 5, delayMs: 3000 });
    await t.enqueue("later", enc("short"), { priority: 5, delayMs: 200 });
    expect(await t.depth("later")).toBe(2); // delayed ones count until due
    const got = new Collector<Delivery>();
    await t.consume(
      ["later"],
      (d) => {
        got.push(d);
        void d.ack();
      },
      { concurrency: 1 },
    );
    const [first, second] = await got.waitFor(2);
    expect([dec(first!.body), dec(second!.body)]).toEqual(["short", "long"]);
    expect(second!.deliveryCount).toBe(1);
  });

  it("rejects every operation after close with a FastAgentic StateError", async ({ skip }) => {
    if (!ok) skip();
    const t = await transport();
    await t.close();
    await t.close();
    expect(t.state).toBe("closed");
    await expect(t.connect()).rejects.toBeInstanceOf(StateError);
    await expect(t.publish("ev.x", enc("x"))).rejects.toBeInstanceOf(StateError);
    await expect(t.subscribe("ev.x", () => {})).rejects.toBeInstanceOf(StateError);
    await expect(t.consume(["q"], () => {}, { concurrency: 1 })).rejects.toBeInstanceOf(StateError);
    await expect(t.depth("q")).rejects.toBeInstanceOf(StateError);
  });

  it("deletes every queue and exchange it declared when closed with deleteOnClose", async ({ skip }) => {
    if (!ok) skip();
    const t = await transport();
    const got = new Collector<Delivery>();
    await t.consume(["tidy"], got.push, { concurrency: 1 });
    await t.subscribe("ev.tidy.>", () => {});
    await t.publish("ev.tidy.x", enc("x"));
    await t.enqueue("tidy", enc("a"), { priority: 5 });
    const [d] = await got.waitFor(1);
    await d!.nack({ delayMs: 100 });
    const [, again] = await got.waitFor(2);
    await again!.deadLetter("enough");
    expect((await brokerNames("queues", t.namespace)).length).toBeGreaterThanOrEqual(3);
    await t.close();
    expect(await brokerNames("queues", t.namespace)).toEqual([]);
    expect(await brokerNames("exchanges", t.namespace)).toEqual([]);
  });
});
