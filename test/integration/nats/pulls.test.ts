/**
 * How a consumer pulls: a level that delivers tasks one at a time gets a standing pull for all its
 * free slots (not one pull per task), gives those slots back when another level needs them, never
 * takes more messages than it has free slots, and what one turn sends (a task event, then the ack)
 * leaves in one socket write. Waits are on events, bounded by the hang guard.
 */
import net from "node:net";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { NatsTransport, NatsTransportOptions } from "../../../transports/nats/index.js";
import type { Delivery } from "../../../transports/transport.js";
import { Collector } from "../../helpers/async.js";
import { natsAvailable, natsServer, testTransport } from "./nats-helpers.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("NATS transport pulls", () => {
  let ok = false;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    ok = await natsAvailable();
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    let failure: unknown;
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: unknown) => {
        failure ??= error;
      });
    }
    if (failure !== undefined) throw failure;
  });

  /** A connected transport in a namespace of its own, whose standing pulls do not expire in a test. */
  async function open(options: NatsTransportOptions = {}): Promise<NatsTransport> {
    const t = testTransport({ idlePullMs: 60_000, ...options });
    cleanups.push(() => t.close());
    await t.connect();
    return t;
  }

  /** A round trip to the server, so anything it was about to push has arrived. */
  async function settle(t: NatsTransport, queue: string): Promise<void> {
    await t.depth(queue);
    await t.depth(queue);
  }

  it("does not renew its pull for each task of a stream arriving one at a time", async ({ skip }) => {
    if (!ok) skip();
    const t = await open();
    const queue = "q.stream";
    await t.depth(queue); // creates the stream, so its pull subject is known
    const spy = await connect({ servers: natsServer });
    cleanups.push(() => spy.close());
    let pulls = 0;
    spy.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${t.names.streamName(queue)}.fa-p1`, {
      callback: () => {
        pulls++;
      },
    });
    await spy.flush();

    const got = new Collector<string>();
    await t.consume(
      [queue],
      (d) => {
        got.push(dec(d.body));
        void d.ack();
      },
      { concurrency: 10 },
    );
    const tasks = 30;
    for (let i = 0; i < tasks; i++) {
      await t.enqueue(queue, enc(`m${i}`), { priority: 5 });
      await got.waitFor(i + 1);
    }
    await settle(t, queue);
    expect(got.items).toEqual(Array.from({ length: tasks }, (_, i) => `m${i}`));
    // A probe and a one-message pull, then pulls for every free slot (11 messages each): 5 in all,
    // where a pull per task would be 31.
    expect(pulls).toBeLessThanOrEqual(8);
  });

  it("gives the slots of a wide standing pull back when a lower level gets a backlog", async ({ skip }) => {
    if (!ok) skip();
    const t = await open();
    const queue = "q.mixed";
    const got = new Collector<Delivery>();
    await t.consume([queue], got.push, { concurrency: 6 });
    // Two NORMAL tasks one at a time: the NORMAL level holds a standing pull for its free slots.
    for (let i = 0; i < 2; i++) {
      await t.enqueue(queue, enc(`normal-${i}`), { priority: 5 });
      const all = await got.waitFor(i + 1);
      await all[i]!.ack();
    }
    // A LOW backlog in one burst, held by the handler: it must get all six slots, not the ones the
    // NORMAL pull left free (that pull would hold the rest until it expires, a minute here).
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => t.enqueue(queue, enc(`low-${i}`), { priority: 0 })),
    );
    const all = await got.waitFor(2 + 6, "six LOW tasks at once");
    expect(all.slice(2).map((d) => dec(d.body))).toEqual([
      "low-0",
      "low-1",
      "low-2",
      "low-3",
      "low-4",
      "low-5",
    ]);
    await settle(t, queue);
    expect(got.items).toHaveLength(8);
    expect(await t.depth(queue)).toBe(4);
  });

  it("takes at most one message beyond its free slots from a level with a wide pull; CRITICAL goes first", async ({
    skip,
  }) => {
    if (!ok) skip();
    const t = await open();
    const queue = "q.bounded";
    const got = new Collector<Delivery>();
    await t.consume([queue], got.push, { concurrency: 2 });
    for (let i = 0; i < 2; i++) {
      await t.enqueue(queue, enc(`warm-${i}`), { priority: 5 });
      const all = await got.waitFor(i + 1);
      await all[i]!.ack();
    }
    for (let i = 0; i < 6; i++) await t.enqueue(queue, enc(`normal-${i}`), { priority: 5 });
    const running = (await got.waitFor(4)).slice(2);
    await settle(t, queue);
    expect(got.items).toHaveLength(4);
    // Its two slots, and at most the one message a standing pull may bring beyond them (held).
    expect(await t.depth(queue)).toBeGreaterThanOrEqual(3);

    await t.enqueue(queue, enc("critical"), { priority: 20 });
    await running[0]!.ack();
    const next = await got.waitFor(5);
    expect(dec(next[4]!.body)).toBe("critical");
  });

  it("stores no priority header for a priority its level stands for, and one for any other", async ({
    skip,
  }) => {
    if (!ok) skip();
    const t = await open();
    const queue = "q.headers";
    await t.enqueue(queue, enc("ten"), { priority: 10 });
    await t.enqueue(queue, enc("seven"), { priority: 7 });
    const nc = await connect({ servers: natsServer });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const stream = t.names.streamName(queue);
    const ten = await jsm.streams.getMessage(stream, { seq: 1 });
    const seven = await jsm.streams.getMessage(stream, { seq: 2 });
    expect(ten?.header.has("Fa-Priority")).toBe(false);
    expect(seven?.header.get("Fa-Priority")).toBe("7");

    const got = new Collector<Delivery>();
    await t.consume(
      [queue],
      (d) => {
        got.push(d);
        void d.ack();
      },
      { concurrency: 2 },
    );
    const both = await got.waitFor(2);
    expect(both.map((d) => [dec(d.body), d.priority])).toEqual([
      ["ten", 10],
      ["seven", 7],
    ]);
  });

  it("puts a task's ack on the wire before it starts a task held behind it", async ({ skip }) => {
    if (!ok) skip();
    const t = await open();
    const writes = vi.spyOn(net.Socket.prototype, "write");
    const acked = () =>
      writes.mock.calls.some(([chunk]) =>
        (typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("latin1")).includes(
          "+ACK",
        ),
      );
    const started = new Collector<{ d: Delivery; ackedBefore: boolean }>();
    await t.consume(["q.first", "q.second"], (d) => started.push({ d, ackedBefore: acked() }), {
      concurrency: 2,
    });
    await t.enqueue("q.first", enc("a1"), { priority: 5 });
    await started.waitFor(1);
    await t.enqueue("q.first", enc("a2"), { priority: 5 });
    const [a] = await started.waitFor(2);
    // "b" arrives on the standing pull of the other queue while both slots are taken: held.
    await t.enqueue("q.second", enc("b"), { priority: 5 });
    // Taken by the standing pull (two round trips are enough on a quiet machine; a loaded one can
    // take longer: a CI run saw depth 1 there), bounded.
    const deadline = Date.now() + 10_000;
    while ((await t.depth("q.second")) !== 0 && Date.now() < deadline) await settle(t, "q.second");
    expect(await t.depth("q.second")).toBe(0);
    expect(started.items).toHaveLength(2);

    writes.mockClear();
    await a!.d.ack(); // a handler that kills its process at once must not take this ack with it
    const [, , b] = await started.waitFor(3);
    expect(dec(b!.d.body)).toBe("b");
    expect(b!.ackedBefore).toBe(true);
  });

  it("sends a task event and the ack that follows it in one socket write", async ({ skip }) => {
    if (!ok) skip();
    const t = await open();
    const queue = "q.write";
    const writes = vi.spyOn(net.Socket.prototype, "write");
    const done = new Collector<string>();
    await t.consume(
      [queue],
      (d) => {
        void (async () => {
          await t.publish("ev.done", d.body); // the outcome first…
          await d.ack(); // …then the ack, a few promise hops later
          done.push(dec(d.body));
        })();
      },
      { concurrency: 1 },
    );
    await t.enqueue(queue, enc("task-1"), { priority: 5 });
    await done.waitFor(1);
    await settle(t, queue);
    const chunks = writes.mock.calls.map(([chunk]) =>
      typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("latin1"),
    );
    const withAck = chunks.filter((c) => c.includes("+ACK"));
    expect(withAck).toHaveLength(1);
    expect(withAck[0]).toContain(`PUB ${t.namespace}.fan.ev.done `);
    expect(withAck[0]!.indexOf("ev.done")).toBeLessThan(withAck[0]!.indexOf("+ACK"));
    expect(await t.depth(queue)).toBe(0);
  });
});
