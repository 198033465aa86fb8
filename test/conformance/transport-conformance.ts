/**
 * The one transport conformance suite: the same cases, run against every adapter (memory, NATS,
 * AMQP). Each adapter's *.conformance.test.ts calls `describeTransportConformance` with a target.
 * Waiting is on events (a Collector), bounded by a hang guard; nothing sleeps.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { FastAgenticError, InvalidNameError, PayloadTooLargeError } from "../../src/errors.js";
import {
  DEAD_LETTER_REASON_HEADER,
  type Delivery,
  deadLetterQueueOf,
  type FanoutMessage,
  type Transport,
} from "../../transports/transport.js";
import { Collector } from "../helpers/async.js";

export interface ConformanceTarget {
  name: string;
  /** False: skip (the helper already said why, loudly). In CI an unreachable broker throws instead. */
  available(): Promise<boolean>;
  /** A new transport in a namespace of its own. */
  create(): Promise<Transport> | Transport;
  /** Removes what a transport declared on the broker (streams, queues). */
  cleanup?(transport: Transport): Promise<void>;
  /** Priority holds across the several queues of one consumer (not on AMQP: per queue only). */
  crossQueuePriority: boolean;
  /** Subscriptions have an inbox (`Subscription.inbox`) that `publish(…, { inbox })` reaches alone. */
  inboxes: boolean;
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export function describeTransportConformance(target: ConformanceTarget): void {
  describe(`transport conformance: ${target.name}`, () => {
    let ok = false;
    const open: Transport[] = [];

    beforeAll(async () => {
      ok = await target.available();
    });

    afterEach(async () => {
      for (const t of open.splice(0)) {
        await target.cleanup?.(t);
        await t.close();
      }
    });

    async function transport(): Promise<Transport> {
      const t = await target.create();
      open.push(t);
      await t.connect();
      return t;
    }

    /** A round trip to the broker, so anything it was about to push has arrived. */
    async function settle(t: Transport, queue: string): Promise<void> {
      await t.depth(queue);
      await t.depth(queue);
    }

    it("connects, reports its state, and closes idempotently", async ({ skip }) => {
      if (!ok) skip();
      const t = await target.create();
      open.push(t);
      const states: string[] = [];
      t.onStatus((e) => states.push(e.state));
      await t.connect();
      await t.connect();
      expect(t.state).toBe("connected");
      expect(t.maxPayloadBytes).toBeGreaterThan(1024);
      await target.cleanup?.(t);
      await t.close();
      await t.close();
      expect(t.state).toBe("closed");
      expect(states).toContain("closed");
      await expect(t.enqueue("q.closed", enc("x"), { priority: 5 })).rejects.toBeInstanceOf(FastAgenticError);
    });

    it("delivers the bytes, headers and priority it was given, first delivery counted 1", async ({
      skip,
    }) => {
      if (!ok) skip();
      const t = await transport();
      const got = new Collector<Delivery>();
      await t.consume(["q.basic"], got.push, { concurrency: 1 });
      await t.enqueue("q.basic", enc("hello"), { priority: 10, headers: { traceparent: "00-abc-def-01" } });
      const [d] = await got.waitFor(1);
      expect(dec(d!.body)).toBe("hello");
      expect(d!.deliveryCount).toBe(1);
      expect(d!.priority).toBe(10);
      expect(d!.queue).toBe("q.basic");
      expect(d!.headers["traceparent"]).toBe("00-abc-def-01");
      await d!.ack();
      await settle(t, "q.basic");
      expect(await t.depth("q.basic")).toBe(0);
    });

    it("delivers higher priority first, first in first out within a priority", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      const order = [
        "low-1:0",
        "normal-1:5",
        "high-1:10",
        "critical:20",
        "normal-2:5",
        "high-2:10",
        "low-2:0",
      ];
      for (const item of order) {
        await t.enqueue("q.prio", enc(item), { priority: Number(item.split(":")[1]) });
      }
      await settle(t, "q.prio");
      const got = new Collector<string>();
      await t.consume(
        ["q.prio"],
        (d) => {
          got.push(dec(d.body));
          void d.ack();
        },
        { concurrency: 1 },
      );
      const seen = await got.waitFor(order.length);
      expect(seen).toEqual([
        "critical:20",
        "high-1:10",
        "high-2:10",
        "normal-1:5",
        "normal-2:5",
        "low-1:0",
        "low-2:0",
      ]);
    });

    it("gives a freed slot the most urgent waiting message, whatever order they arrived in", async ({
      skip,
    }) => {
      if (!ok) skip();
      const t = await transport();
      const got = new Collector<Delivery>();
      await t.consume(["q.busy"], got.push, { concurrency: 1 });
      await t.enqueue("q.busy", enc("blocker"), { priority: 5 });
      const [blocker] = await got.waitFor(1);
      // The only slot is taken: these wait (in the broker or in the consumer) in arrival order low first.
      for (const item of ["low:0", "normal:5", "high:10", "critical:20"]) {
        await t.enqueue("q.busy", enc(item), { priority: Number(item.split(":")[1]) });
      }
      await settle(t, "q.busy");
      await settle(t, "q.busy");
      expect(got.items).toHaveLength(1);
      await blocker!.ack();
      const seen: string[] = [];
      for (let i = 2; i <= 5; i++) {
        const d = (await got.waitFor(i))[i - 1]!;
        seen.push(dec(d.body));
        await settle(t, "q.busy"); // time for anything more urgent to arrive before the slot frees
        await d.ack();
      }
      expect(seen).toEqual(["critical:20", "high:10", "normal:5", "low:0"]);
    });

    it("keeps priority across the queues of one consumer where the broker allows it", async ({ skip }) => {
      if (!ok || !target.crossQueuePriority) skip();
      const t = await transport();
      await t.enqueue("q.multi.a", enc("a-low"), { priority: 0 });
      await t.enqueue("q.multi.b", enc("b-critical"), { priority: 20 });
      await t.enqueue("q.multi.a", enc("a-high"), { priority: 10 });
      await settle(t, "q.multi.a");
      const got = new Collector<string>();
      await t.consume(
        ["q.multi.a", "q.multi.b"],
        (d) => {
          got.push(dec(d.body));
          void d.ack();
        },
        { concurrency: 1 },
      );
      expect(await got.waitFor(3)).toEqual(["b-critical", "a-high", "a-low"]);
    });

    it("never has more unsettled deliveries than the concurrency; settling lets the next one in", async ({
      skip,
    }) => {
      if (!ok) skip();
      const t = await transport();
      for (let i = 0; i < 5; i++) await t.enqueue("q.conc", enc(`m${i}`), { priority: 5 });
      const got = new Collector<Delivery>();
      await t.consume(["q.conc"], got.push, { concurrency: 2 });
      const firstTwo = await got.waitFor(2);
      await settle(t, "q.conc");
      expect(got.items).toHaveLength(2);
      expect(await t.depth("q.conc")).toBe(3);
      await firstTwo[0]!.ack();
      await got.waitFor(3);
      await settle(t, "q.conc");
      expect(got.items).toHaveLength(3);
    });

    it("pauses at concurrency 0 and resumes when it is raised", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      const got = new Collector<Delivery>();
      const consumer = await t.consume(["q.pause"], got.push, { concurrency: 0 });
      await t.enqueue("q.pause", enc("x"), { priority: 5 });
      await settle(t, "q.pause");
      expect(got.items).toHaveLength(0);
      expect(await t.depth("q.pause")).toBe(1);
      consumer.setConcurrency(1);
      const [d] = await got.waitFor(1);
      await d!.ack();
    });

    it("redelivers a nacked message, counting the delivery", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      const got = new Collector<Delivery>();
      await t.consume(["q.nack"], got.push, { concurrency: 1 });
      await t.enqueue("q.nack", enc("again"), { priority: 5 });
      const [first] = await got.waitFor(1);
      await first!.nack();
      const [, second] = await got.waitFor(2);
      expect(dec(second!.body)).toBe("again");
      expect(second!.deliveryCount).toBe(2);
      await second!.ack();
    });

    it("delays a nack({ delayMs }) without blocking the messages behind it", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      const got = new Collector<Delivery>();
      await t.consume(["q.delay"], got.push, { concurrency: 1 });
      await t.enqueue("q.delay", enc("slow"), { priority: 20 });
      const [first] = await got.waitFor(1);
      await first!.nack({ delayMs: 1500 });
      await t.enqueue("q.delay", enc("behind"), { priority: 0 });
      const [, second] = await got.waitFor(2);
      expect(dec(second!.body)).toBe("behind");
      await second!.ack();
      const [, , third] = await got.waitFor(3);
      expect(dec(third!.body)).toBe("slow");
      expect(third!.deliveryCount).toBe(2);
      await third!.ack();
    });

    it("returns unsettled deliveries to the queue when their consumer stops", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      const first = new Collector<Delivery>();
      const consumer = await t.consume(["q.stop"], first.push, { concurrency: 2 });
      await t.enqueue("q.stop", enc("a"), { priority: 5 });
      await t.enqueue("q.stop", enc("b"), { priority: 5 });
      const held = await first.waitFor(2);
      await consumer.stop();
      await held[0]!.ack(); // settling a delivery of a stopped consumer is harmless
      const second = new Collector<Delivery>();
      await t.consume(
        ["q.stop"],
        (d) => {
          second.push(d);
          void d.ack();
        },
        { concurrency: 2 },
      );
      const again = await second.waitFor(2);
      expect(again.map((d) => dec(d.body)).sort()).toEqual(["a", "b"]);
      for (const d of again) expect(d.deliveryCount).toBeGreaterThanOrEqual(2);
    });

    it("shares a queue between competing consumers, each message to one of them", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      const all = new Collector<string>();
      const byConsumer = [0, 0];
      // Each consumer holds its deliveries (one at a time: concurrency 1) until both have had one:
      // the first to receive blocks, so the queue must hand the next message to the other.
      const held: Delivery[] = [];
      const both = () => (byConsumer[0] as number) > 0 && (byConsumer[1] as number) > 0;
      for (const i of [0, 1]) {
        await t.consume(
          ["q.compete"],
          (d) => {
            byConsumer[i]!++;
            all.push(dec(d.body));
            held.push(d);
            if (both()) for (const h of held.splice(0)) void h.ack();
          },
          { concurrency: 1 },
        );
      }
      for (let i = 0; i < 20; i++) await t.enqueue("q.compete", enc(`m${i}`), { priority: 5 });
      const seen = await all.waitFor(20, "20 deliveries over the two consumers");
      await settle(t, "q.compete");
      expect(new Set(seen).size).toBe(20);
      expect(all.items).toHaveLength(20);
      expect(byConsumer[0]).toBeGreaterThan(0);
      expect(byConsumer[1]).toBeGreaterThan(0);
      expect((byConsumer[0] as number) + (byConsumer[1] as number)).toBe(20);
    });

    it("moves a dead-lettered message to the dead-letter queue with its reason", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      const got = new Collector<Delivery>();
      await t.consume(["q.dl"], got.push, { concurrency: 1 });
      await t.enqueue("q.dl", enc("poison"), { priority: 5 });
      const [d] = await got.waitFor(1);
      await d!.deadLetter("it cannot be decoded");
      const dead = new Collector<Delivery>();
      await t.consume([deadLetterQueueOf("q.dl")], dead.push, { concurrency: 1 });
      const [letter] = await dead.waitFor(1);
      expect(dec(letter!.body)).toBe("poison");
      expect(letter!.headers[DEAD_LETTER_REASON_HEADER]).toBe("it cannot be decoded");
      await letter!.ack();
      expect(await t.depth("q.dl")).toBe(0);
    });

    it("counts waiting messages in depth, not unsettled ones", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      expect(await t.depth("q.depth")).toBe(0);
      for (let i = 0; i < 4; i++) await t.enqueue("q.depth", enc(`m${i}`), { priority: 5 });
      expect(await t.depth("q.depth")).toBe(4);
      const got = new Collector<Delivery>();
      await t.consume(["q.depth"], got.push, { concurrency: 1 });
      await got.waitFor(1);
      await settle(t, "q.depth");
      expect(await t.depth("q.depth")).toBe(3);
    });

    it("drops a re-sent message with the same dedupId", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      await t.enqueue("q.dedup", enc("once"), { priority: 5, dedupId: "task-1" });
      await t.enqueue("q.dedup", enc("once"), { priority: 5, dedupId: "task-1" });
      await t.enqueue("q.dedup", enc("other"), { priority: 5, dedupId: "task-2" });
      expect(await t.depth("q.dedup")).toBe(2);
    });

    it("fans out to every subscriber, with trailing wildcards, until unsubscribed", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      const exact = new Collector<FanoutMessage>();
      const also = new Collector<FanoutMessage>();
      const wild = new Collector<FanoutMessage>();
      const sub = await t.subscribe("ev.a.b", exact.push);
      await t.subscribe("ev.a.b", also.push);
      await t.subscribe("ev.a.>", wild.push);
      await t.publish("ev.a.b", enc("one"));
      await t.publish("ev.other", enc("not for us"));
      await t.publish("ev.a.c.d", enc("deep"));
      expect(dec((await exact.waitFor(1))[0]!.body)).toBe("one");
      expect(dec((await also.waitFor(1))[0]!.body)).toBe("one");
      const w = await wild.waitFor(2);
      expect(w.map((m) => `${m.subject}=${dec(m.body)}`).sort()).toEqual(["ev.a.b=one", "ev.a.c.d=deep"]);
      await sub.unsubscribe();
      await t.publish("ev.a.b", enc("two"));
      await also.waitFor(2);
      expect(exact.items).toHaveLength(1);
    });

    it("sends to one subscription's inbox where the transport has inboxes, else fans out", async ({
      skip,
    }) => {
      if (!ok) skip();
      const t = await transport();
      const mine = new Collector<FanoutMessage>();
      const other = new Collector<FanoutMessage>();
      const sub = await t.subscribe("ev.reply", mine.push);
      await t.subscribe("ev.reply", other.push);
      await t.publish("ev.reply", enc("for you"), { inbox: sub.inbox });
      await t.publish("ev.reply", enc("not an inbox: for all"), { inbox: "nobody" });
      await t.publish("ev.reply", enc("for all"));
      const got = await mine.waitFor(3);
      expect(got.map((m) => `${m.subject}=${dec(m.body)}`)).toEqual([
        "ev.reply=for you",
        "ev.reply=not an inbox: for all",
        "ev.reply=for all",
      ]);
      // Messages reach a subscriber in the order they were published: once the last one is in,
      // whatever was to reach `other` before it has.
      const theirs = await other.waitFor(sub.inbox === undefined ? 3 : 2);
      expect(theirs.map((m) => dec(m.body))).toEqual(
        sub.inbox === undefined
          ? ["for you", "not an inbox: for all", "for all"]
          : ["not an inbox: for all", "for all"],
      );
      expect(sub.inbox !== undefined).toBe(target.inboxes);
    });

    it("refuses names that cannot be subjects or queue names, before any broker call", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      for (const bad of ["", "a..b", "a b", "a.*", "a.>", "$JS.API", "amq/x", ".a", "a."]) {
        await expect(t.enqueue(bad, enc("x"), { priority: 5 }), bad).rejects.toBeInstanceOf(InvalidNameError);
        await expect(t.publish(bad, enc("x")), bad).rejects.toBeInstanceOf(InvalidNameError);
      }
    });

    it("refuses a body over maxPayloadBytes with the limit in the message", async ({ skip }) => {
      if (!ok) skip();
      const t = await transport();
      const big = new Uint8Array(t.maxPayloadBytes + 1);
      const error = await t.enqueue("q.big", big, { priority: 5 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PayloadTooLargeError);
      expect((error as Error).message).toContain(String(t.maxPayloadBytes));
    });
  });
}
