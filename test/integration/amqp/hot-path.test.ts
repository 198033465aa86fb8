/**
 * The fast paths of the AMQP transport keep its guarantees: a fan-out message published on a
 * worker's consumer channel goes out ahead of the ack that follows it (and a refused one takes
 * that ack down with it), acks sent together never cover a delivery still unsettled, a changed
 * concurrency is exact, and the frames of one turn leave in one socket write. The wire is read
 * through a TCP proxy (client → broker bytes, parsed into AMQP frames).
 */
import { connect } from "amqplib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AmqpTransport } from "../../../transports/amqp/index.js";
import type { Delivery, FanoutMessage } from "../../../transports/transport.js";
import { Collector } from "../../helpers/async.js";
import { AMQP_URL } from "../../helpers/brokers.js";
import { amqpAvailable, amqpUrl, testTransport } from "./amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./broker-lock.js";
import { TcpProxy } from "./tcp-proxy.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

interface Frame {
  channel: number;
  /** "publish", "ack" (with its tag and multiple flag), or "other". */
  kind: "publish" | "ack" | "other";
  tag?: number;
  multiple?: boolean;
}

/** Parses the AMQP frames a client sent (after the 8-byte protocol header). */
class FrameReader {
  readonly frames: Frame[] = [];
  private rest = Buffer.alloc(0);
  private headerSkipped = false;

  push(chunk: Buffer): void {
    this.rest = Buffer.concat([this.rest, chunk]);
    if (!this.headerSkipped) {
      if (this.rest.length < 8) return;
      this.rest = this.rest.subarray(8);
      this.headerSkipped = true;
    }
    while (this.rest.length >= 7) {
      const size = this.rest.readUInt32BE(3);
      if (this.rest.length < size + 8) return;
      const type = this.rest[0];
      const channel = this.rest.readUInt16BE(1);
      const payload = this.rest.subarray(7, 7 + size);
      this.rest = this.rest.subarray(size + 8);
      if (type !== 1) continue; // header and body frames follow their method frame
      const classId = payload.readUInt16BE(0);
      const methodId = payload.readUInt16BE(2);
      if (classId === 60 && methodId === 40) this.frames.push({ channel, kind: "publish" });
      else if (classId === 60 && methodId === 80) {
        const tag = Number(payload.readBigUInt64BE(4));
        this.frames.push({ channel, kind: "ack", tag, multiple: (payload[12] as number & 1) === 1 });
      } else this.frames.push({ channel, kind: "other" });
    }
  }
}

/** In `sent`: a publish (the outcome), then acks, every one after it and on its channel (the consumer's). */
function expectPublishThenAcksOnItsChannel(sent: readonly Frame[]): void {
  const publish = sent.findIndex((f) => f.kind === "publish");
  const acks = sent.filter((f) => f.kind === "ack");
  expect(publish).toBeGreaterThanOrEqual(0);
  expect(acks.length).toBeGreaterThan(0);
  for (const ack of acks) {
    expect(ack.channel).toBe(sent[publish]!.channel);
    expect(sent.indexOf(ack)).toBeGreaterThan(publish);
  }
}

/** Counts the socket writes of a transport's connection from now on (`_write` and `_writev`). */
/** Whether the bytes of one socket write are basic.qos frames only (a prefetch change). */
function onlyQos(chunks: Buffer[]): boolean {
  const bytes = Buffer.concat(chunks);
  let offset = 0;
  while (offset + 11 <= bytes.length) {
    const type = bytes[offset];
    const size = bytes.readUInt32BE(offset + 3);
    const classId = bytes.readUInt16BE(offset + 7);
    const methodId = bytes.readUInt16BE(offset + 9);
    if (type !== 1 || classId !== 60 || methodId !== 10) return false;
    offset += size + 8;
  }
  return offset === bytes.length && bytes.length > 0;
}

/**
 * Counts the socket writes of a transport's connection, and among them those that only change a
 * consumer's prefetch (the consumer adjusts it as what it holds changes; not part of a task's path).
 */
function countSocketWrites(t: AmqpTransport): { count: number; qosOnly: number } {
  const model = t.connection.current as unknown as {
    connection: { stream: { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void } };
  };
  const socket = model.connection.stream;
  const counter = { count: 0, qosOnly: 0 };
  const write = socket._write.bind(socket);
  const writev = socket._writev.bind(socket);
  socket._write = (...args: unknown[]) => {
    counter.count++;
    if (onlyQos([args[0] as Buffer])) counter.qosOnly++;
    write(...args);
  };
  socket._writev = (...args: unknown[]) => {
    counter.count++;
    if (onlyQos((args[0] as Array<{ chunk: Buffer }>).map((c) => c.chunk))) counter.qosOnly++;
    writev(...args);
  };
  return counter;
}

/** Lets amqplib's multiplexer (scheduled with setImmediate) write what this turn queued. */
async function multiplexerPasses(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}

describe("AMQP fast paths", () => {
  let ok = false;
  let release: (() => Promise<void>) | undefined;
  let proxy: TcpProxy;
  let wire = new Map<number, FrameReader>();
  const open: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    ok = await amqpAvailable();
    if (!ok) return;
    release = await lockBroker();
    proxy = await TcpProxy.start({ host: amqpUrl.hostname, port: Number(amqpUrl.port || 5672) });
    proxy.onClientData = (connection, chunk) => {
      let reader = wire.get(connection);
      if (!reader) {
        reader = new FrameReader();
        wire.set(connection, reader);
      }
      reader.push(chunk);
    };
  }, BROKER_LOCK_WAIT_MS + 10_000);

  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
    wire = new Map();
  });

  afterAll(async () => {
    await proxy?.close();
    await release?.();
  });

  /** A transport through the proxy (its frames are read); returns it and its frames. */
  async function tapped(): Promise<{ t: AmqpTransport; frames: () => Frame[] }> {
    const t = testTransport({ url: proxy.url(amqpUrl) });
    open.push(t);
    await t.connect();
    const connection = proxy.accepted;
    return { t, frames: () => wire.get(connection)?.frames ?? [] };
  }

  async function peer(of: AmqpTransport): Promise<AmqpTransport> {
    const t = testTransport({ namespace: of.namespace });
    open.push(t);
    await t.connect();
    return t;
  }

  /** Waits until the broker has seen everything sent so far on `t` (a round trip on its topology channel). */
  async function flushed(t: AmqpTransport, queue: string): Promise<void> {
    await t.depth(queue);
  }

  it("publishes a worker's outcome on its consumer channel, ahead of the ack that follows", async ({
    skip,
  }) => {
    if (!ok) skip();
    const { t, frames } = await tapped();
    const producer = await peer(t);
    const events = new Collector<FanoutMessage>();
    await producer.subscribe("ev.jobs.>", events.push);
    const got = new Collector<Delivery>();
    await t.consume(["jobs"], got.push, { concurrency: 4 });
    await t.publish("ev.jobs.warmup", enc("declares the exchange"));
    await events.waitFor(1);
    for (const body of ["a", "b", "c"]) await producer.enqueue("jobs", enc(body), { priority: 5 });
    const deliveries = await got.waitFor(3);
    const before = frames().length;
    // As a worker does: publish the outcome, then ack once the publish resolved.
    await t.publish("ev.jobs.task", enc("outcomes of a, b, c"));
    await Promise.all(deliveries.map((d) => d.ack()));
    await flushed(t, "jobs");
    expectPublishThenAcksOnItsChannel(frames().slice(before));
    expect(dec((await events.waitFor(2))[1]!.body)).toBe("outcomes of a, b, c");
    expect(await producer.depth("jobs")).toBe(0);
  });

  it("sends a message for one client's inbox the same way: on the consumer channel, ahead of the ack", async ({
    skip,
  }) => {
    if (!ok) skip();
    const { t, frames } = await tapped();
    const producer = await peer(t);
    const mine = new Collector<FanoutMessage>();
    const others = new Collector<FanoutMessage>();
    const sub = await producer.subscribe("ev.jobs.task", mine.push);
    await producer.subscribe("ev.jobs.task", others.push);
    expect(sub.inbox).toBeDefined();
    const got = new Collector<Delivery>();
    await t.consume(["jobs"], got.push, { concurrency: 4 });
    await producer.enqueue("jobs", enc("a"), { priority: 5 });
    const [delivery] = await got.waitFor(1);
    const before = frames().length;
    await t.publish("ev.jobs.task", enc("outcome of a"), { inbox: sub.inbox });
    await delivery!.ack();
    await flushed(t, "jobs");
    expectPublishThenAcksOnItsChannel(frames().slice(before));
    const [message] = await mine.waitFor(1);
    expect(`${message!.subject}=${dec(message!.body)}`).toBe("ev.jobs.task=outcome of a");
    // The other subscriber gets the next fan-out message, and nothing before it.
    await t.publish("ev.jobs.task", enc("for all"));
    expect((await others.waitFor(1)).map((m) => dec(m.body))).toEqual(["for all"]);
  });

  it("leaves a task unacked when the outcome published before its ack is refused", async ({ skip }) => {
    if (!ok) skip();
    const { t } = await tapped();
    const producer = await peer(t);
    const events = new Collector<FanoutMessage>();
    const got = new Collector<Delivery>();
    await t.consume(["jobs"], got.push, { concurrency: 1 });
    await t.publish("ev.jobs.warmup", enc("declares the exchange"));
    await producer.enqueue("jobs", enc("a"), { priority: 5 });
    const [first] = await got.waitFor(1);
    // Someone deletes the events exchange: the outcome published on the consumer channel is
    // refused (404), which closes that channel, so the ack written after it is never taken.
    const conn = await connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.deleteExchange(`${t.namespace}:events`);
    await conn.close();
    await t.publish("ev.jobs.task", enc("lost outcome"));
    await first!.ack();
    const [, again] = await got.waitFor(2, "the task delivered again");
    expect(dec(again!.body)).toBe("a");
    expect(again!.deliveryCount).toBe(2);
    // The exchange is declared again: the next outcome reaches a subscriber.
    await producer.subscribe("ev.jobs.>", events.push);
    await t.publish("ev.jobs.task", enc("outcome of a"));
    await again!.ack();
    const received = await events.waitFor(1);
    expect(received.map((m) => dec(m.body))).toContain("outcome of a");
    await flushed(t, "jobs");
    expect(await producer.depth("jobs")).toBe(0);
  });

  it("publishes on the channel of the one consumer holding deliveries when several share the transport", async ({
    skip,
  }) => {
    if (!ok) skip();
    const { t, frames } = await tapped();
    const producer = await peer(t);
    const events = new Collector<FanoutMessage>();
    await producer.subscribe("ev.jobs.>", events.push);
    const busy = new Collector<Delivery>();
    await t.consume(["jobs"], busy.push, { concurrency: 1 });
    await t.consume(["idle"], () => {}, { concurrency: 1 }); // holds nothing
    await t.publish("ev.jobs.warmup", enc("declares the exchange"));
    await events.waitFor(1);
    await producer.enqueue("jobs", enc("a"), { priority: 5 });
    const [d] = await busy.waitFor(1);
    const before = frames().length;
    await t.publish("ev.jobs.task", enc("outcome of a"));
    await d!.ack();
    await flushed(t, "jobs");
    expectPublishThenAcksOnItsChannel(frames().slice(before));
    expect(dec((await events.waitFor(2))[1]!.body)).toBe("outcome of a");
  });

  it("publishes through the confirm channel while two consumers hold deliveries", async ({ skip }) => {
    if (!ok) skip();
    const { t, frames } = await tapped();
    const producer = await peer(t);
    const events = new Collector<FanoutMessage>();
    await producer.subscribe("ev.jobs.>", events.push);
    const a = new Collector<Delivery>();
    const b = new Collector<Delivery>();
    await t.consume(["jobs"], a.push, { concurrency: 1 });
    await t.consume(["jobs"], b.push, { concurrency: 1 });
    await t.publish("ev.jobs.warmup", enc("declares the exchange"));
    await events.waitFor(1);
    await producer.enqueue("jobs", enc("a"), { priority: 5 });
    await producer.enqueue("jobs", enc("b"), { priority: 5 });
    const [da] = await a.waitFor(1);
    const [db] = await b.waitFor(1);
    const before = frames().length;
    await t.publish("ev.jobs.task", enc("outcomes"));
    await da!.ack();
    await db!.ack();
    await flushed(t, "jobs");
    const sent = frames().slice(before);
    const publish = sent.find((f) => f.kind === "publish");
    const ackChannels = new Set(sent.filter((f) => f.kind === "ack").map((f) => f.channel));
    expect(ackChannels.size).toBe(2);
    // Neither consumer channel: the publish was confirmed before either ack was sent.
    expect(ackChannels.has(publish!.channel)).toBe(false);
    expect(dec((await events.waitFor(2))[1]!.body)).toBe("outcomes");
  });

  it("acks a run of deliveries with one frame, never covering one still unsettled", async ({ skip }) => {
    if (!ok) skip();
    const { t, frames } = await tapped();
    const producer = await peer(t);
    const got = new Collector<Delivery>();
    const consumer = await t.consume(["batch"], got.push, { concurrency: 10 });
    for (let i = 0; i < 8; i++) await producer.enqueue("batch", enc(`m${i}`), { priority: 5 });
    const deliveries = await got.waitFor(8);
    const before = frames().length;
    // The first is still running; the others finish in one turn, then two more in the next.
    await Promise.all(deliveries.slice(3).map((d) => d.ack()));
    await flushed(t, "batch");
    await Promise.all([deliveries[1]!.ack(), deliveries[2]!.ack()]);
    await flushed(t, "batch");
    const acks = frames()
      .slice(before)
      .filter((f) => f.kind === "ack");
    // Tags 1..8: 4..8 are above the unsettled 1, so each is acked alone; 2 and 3 likewise.
    expect(acks.every((f) => !f.multiple)).toBe(true);
    expect(acks.map((f) => f.tag).sort((x, y) => (x as number) - (y as number))).toEqual([
      2, 3, 4, 5, 6, 7, 8,
    ]);
    // Stopping returns the unsettled first delivery, and only it.
    await consumer.stop();
    const again = new Collector<Delivery>();
    await t.consume(["batch"], again.push, { concurrency: 10 });
    const [back] = await again.waitFor(1);
    expect(dec(back!.body)).toBe("m0");
    await back!.ack();
    await flushed(t, "batch");
    expect(again.items).toHaveLength(1);
    expect(await producer.depth("batch")).toBe(0);

    // With nothing unsettled below them, deliveries settled in one turn go in one multiple ack.
    const run = new Collector<Delivery>();
    await t.consume(["run"], run.push, { concurrency: 10 });
    for (let i = 0; i < 5; i++) await producer.enqueue("run", enc(`n${i}`), { priority: 5 });
    const five = await run.waitFor(5);
    const n = frames().length;
    await Promise.all(five.map((d) => d.ack()));
    await flushed(t, "run");
    const last = frames()
      .slice(n)
      .filter((f) => f.kind === "ack");
    expect(last).toHaveLength(1);
    expect(last[0]).toMatchObject({ tag: 5, multiple: true });
    expect(await producer.depth("run")).toBe(0);
  });

  it("keeps the concurrency exact when it changes with deliveries in hand", async ({ skip }) => {
    if (!ok) skip();
    const t = testTransport();
    open.push(t);
    await t.connect();
    for (let i = 0; i < 8; i++) await t.enqueue("conc", enc(`m${i}`), { priority: 5 });
    const got = new Collector<Delivery>();
    const consumer = await t.consume(["conc"], got.push, { concurrency: 2 });
    await got.waitFor(2);
    consumer.setConcurrency(3);
    await got.waitFor(3, "one more delivery");
    await flushed(t, "conc");
    expect(got.items).toHaveLength(3);
    expect(await t.depth("conc")).toBe(5); // the broker sent no more than the limit
    consumer.setConcurrency(0);
    await flushed(t, "conc");
    consumer.setConcurrency(4); // resumed with 3 in hand: one more, not four
    await got.waitFor(4, "one more delivery after the resume");
    await flushed(t, "conc");
    expect(got.items).toHaveLength(4);
    expect(await t.depth("conc")).toBe(4);
    for (const d of got.items) await d.ack();
    await got.waitFor(8, "the rest");
    for (const d of got.items.slice(4)) await d.ack();
    await flushed(t, "conc");
    expect(await t.depth("conc")).toBe(0);
  });

  it("sends the frames of one turn in one socket write", async ({ skip }) => {
    if (!ok) skip();
    const t = testTransport();
    open.push(t);
    await t.connect();
    await t.enqueue("burst", enc("declares the queue"), { priority: 5 });
    const writes = countSocketWrites(t);
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => t.enqueue("burst", enc(`m${i}`), { priority: 5 })),
    );
    expect(writes.count).toBeLessThan(20); // one write per turn, not one per message
    expect(await t.depth("burst")).toBe(201);
  });

  it("writes a worker's outcome and the acks of a whole batch at once, even with nothing left in hand", async ({
    skip,
  }) => {
    if (!ok) skip();
    const { t } = await tapped();
    const producer = await peer(t);
    const events = new Collector<FanoutMessage>();
    await producer.subscribe("ev.batch.task", events.push);
    await t.publish("ev.batch.task", enc("declares the exchange"));
    await events.waitFor(1);
    for (let i = 0; i < 20; i++) await producer.enqueue("batch", enc(`m${i}`), { priority: 5 });
    const got = new Collector<Delivery>();
    await t.consume(["batch"], got.push, { concurrency: 32 });
    const deliveries = await got.waitFor(20);
    const writes = countSocketWrites(t);
    // As a worker does with a batch: the outcomes, then every ack, in one turn.
    await t.publish("ev.batch.task", enc("outcomes of the batch"));
    await Promise.all(deliveries.map((d) => d.ack()));
    await multiplexerPasses();
    expect(writes.count).toBe(1);
    expect(dec((await events.waitFor(2))[1]!.body)).toBe("outcomes of the batch");
    // One task at a time, the outcome leaves ahead of its ack, in a write of its own (the consumer
    // may also bring its prefetch back from the batch's, in a write of that alone).
    await producer.enqueue("batch", enc("alone"), { priority: 5 });
    const [alone] = (await got.waitFor(21)).slice(20);
    writes.count = 0;
    writes.qosOnly = 0;
    await t.publish("ev.batch.task", enc("outcome of one"));
    await alone!.ack();
    await multiplexerPasses();
    expect(writes.count - writes.qosOnly).toBe(2);
    expect(await producer.depth("batch")).toBe(0);
  });
});
