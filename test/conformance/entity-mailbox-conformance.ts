/**
 * The one entity-mailbox conformance suite (transports/entity-mailbox.ts), run against every
 * broker: memory, NATS, AMQP. Each *.entity-mailbox.conformance.test.ts calls
 * `describeMailboxConformance` with a target. Waiting is on events, bounded by a hang guard.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, InvalidNameError } from "../../src/errors.js";
import type {
  EntityMailbox,
  HoldOptions,
  MailboxMessage,
  PartitionHold,
} from "../../transports/entity-mailbox.js";
import { Collector, HANG_GUARD_MS } from "../helpers/async.js";

export interface MailboxEndpoint {
  mailbox: EntityMailbox;
  /** Ends the endpoint as a crash would (its connection dropped, nothing released). */
  crash(): Promise<void>;
  close(): Promise<void>;
}

export interface MailboxTarget {
  name: string;
  available(): Promise<boolean>;
  /** A first endpoint in a namespace of its own. */
  create(): Promise<MailboxEndpoint>;
  /** Another process's endpoint on the same namespace. */
  peer(first: MailboxEndpoint): Promise<MailboxEndpoint>;
  /** Whether a re-send with the same id is de-duplicated. */
  dedup: boolean;
  /** Whether messages carry their position in the box (MailboxMessage.seq). */
  sequenced: boolean;
  /** Whether crash() can be simulated (a process of its own). */
  crashes: boolean;
}

const enc = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));
const dec = (b: Uint8Array) => Buffer.from(b).toString("utf8");

export function describeMailboxConformance(target: MailboxTarget): void {
  describe(`entity mailbox conformance: ${target.name}`, () => {
    let ok = false;
    const open: MailboxEndpoint[] = [];
    let boxSeq = 0;
    const box = () => `box${process.pid}x${++boxSeq}`;

    beforeAll(async () => {
      ok = await target.available();
    });

    afterEach(async () => {
      for (const e of open.splice(0).reverse()) await e.close();
    });

    async function endpoint(): Promise<MailboxEndpoint> {
      const e = await target.create();
      open.push(e);
      return e;
    }

    async function peer(first: MailboxEndpoint): Promise<MailboxEndpoint> {
      const e = await target.peer(first);
      if (e !== first) open.push(e);
      return e;
    }

    function options(extra: Partial<HoldOptions> = {}): HoldOptions {
      return { holder: "test", inFlight: 16, failoverMs: 2000, onReset: () => {}, ...extra };
    }

    /** Collects bodies; acks each unless told not to. */
    function collector(ack = true) {
      const got = new Collector<MailboxMessage>();
      const handler = (m: MailboxMessage) => {
        got.push(m);
        if (ack) m.ack();
      };
      return { got, handler, bodies: () => got.items.map((m) => dec(m.body)) };
    }

    it("hands a partition's messages to its holder in the order they were sent", async ({ skip }) => {
      if (!ok) skip();
      const e = await endpoint();
      const b = box();
      const c = collector();
      await e.mailbox.hold(b, 4, 2, c.handler, options());
      for (let i = 0; i < 30; i++) await e.mailbox.send(b, 4, 2, enc(`m${i}`));
      const got = await c.got.waitFor(30);
      expect(got.map((m) => dec(m.body))).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`));
      expect(got.every((m) => m.partition === 2 && m.deliveryCount === 1)).toBe(true);
    });

    it("keeps partitions apart: a holder of one never sees another's messages", async ({ skip }) => {
      if (!ok) skip();
      const e = await endpoint();
      const b = box();
      const c0 = collector();
      const c1 = collector();
      await e.mailbox.hold(b, 2, 0, c0.handler, options());
      await e.mailbox.hold(b, 2, 1, c1.handler, options());
      await e.mailbox.send(b, 2, 1, enc("one"));
      await e.mailbox.send(b, 2, 0, enc("zero"));
      expect((await c0.got.waitFor(1)).map((m) => dec(m.body))).toEqual(["zero"]);
      expect((await c1.got.waitFor(1)).map((m) => dec(m.body))).toEqual(["one"]);
    });

    it("hands at most inFlight messages before acks, and the next ones as they are acked", async ({
      skip,
    }) => {
      if (!ok) skip();
      const e = await endpoint();
      const b = box();
      const c = collector(false);
      await e.mailbox.hold(b, 1, 0, c.handler, options({ inFlight: 3 }));
      for (let i = 0; i < 6; i++) await e.mailbox.send(b, 1, 0, enc(`m${i}`));
      await c.got.waitFor(3);
      await e.mailbox.send(b, 1, 0, enc("probe")); // a round trip: anything more would have arrived
      await e.mailbox.depth(b, 1, 0);
      expect(c.got.items).toHaveLength(3);
      c.got.items[1]!.ack();
      await c.got.waitFor(4);
      expect(c.bodies()).toEqual(["m0", "m1", "m2", "m3"]);
    });

    it("lets one claim hold a partition; the next takes over on release, unacked messages first, in order", async ({
      skip,
    }) => {
      if (!ok) skip();
      const e = await endpoint();
      const other = await peer(e);
      const b = box();
      const first = collector(false);
      const second = collector();
      const hold = await e.mailbox.hold(b, 1, 0, first.handler, options({ inFlight: 4 }));
      await first.got.waitFor(0);
      for (let i = 0; i < 6; i++) await e.mailbox.send(b, 1, 0, enc(`m${i}`));
      await first.got.waitFor(4);
      await other.mailbox.hold(b, 1, 0, second.handler, options());
      await e.mailbox.send(b, 1, 0, enc("m6"));
      await e.mailbox.depth(b, 1, 0);
      expect(second.got.items).toHaveLength(0); // a standby while the first holds
      first.got.items[0]!.ack();
      first.got.items[2]!.ack();
      await first.got.waitFor(5); // m4 took the freed slots (m5 too, maybe)
      const handed = first.bodies();
      const acked = new Set(["m0", "m2"]);
      await hold.release();
      const expected = ["m0", "m1", "m2", "m3", "m4", "m5", "m6"].filter((m) => !acked.has(m));
      const got = await second.got.waitFor(expected.length);
      expect(got.map((m) => dec(m.body))).toEqual(expected);
      expect(handed.length).toBeGreaterThanOrEqual(5);
      // A numbered message handed over again keeps its number, and numbers grow in the partition's
      // order: the entity host skips a delivery at or below the last number it took for an id.
      const seqs = got.map((m) => m.seq);
      if (target.sequenced) {
        const before = new Map(first.got.items.map((m) => [dec(m.body), m.seq]));
        expect(seqs.every((q, i) => q !== undefined && (i === 0 || q > (seqs[i - 1] as number)))).toBe(true);
        for (const m of got) if (before.has(dec(m.body))) expect(m.seq).toBe(before.get(dec(m.body)));
        expect(got.filter((m) => before.has(dec(m.body))).length).toBeGreaterThan(0);
      } else {
        expect(seqs.every((q) => q === undefined)).toBe(true);
      }
    });

    it("gives a crashed holder's partition to the standby, unacked messages first", async ({ skip }) => {
      if (!ok || !target.crashes) skip();
      const e = await endpoint();
      const other = await peer(e);
      const b = box();
      const first = collector(false);
      const second = collector();
      await e.mailbox.hold(b, 1, 0, first.handler, options({ inFlight: 2 }));
      await other.mailbox.hold(b, 1, 0, second.handler, options());
      for (let i = 0; i < 4; i++) await other.mailbox.send(b, 1, 0, enc(`m${i}`));
      await first.got.waitFor(2);
      first.got.items[0]!.ack();
      await first.got.waitFor(3);
      await other.mailbox.depth(b, 1, 0); // the ack reached the broker
      await e.crash();
      const got = await second.got.waitFor(3, "the standby's messages", 60_000);
      expect(got.map((m) => dec(m.body))).toEqual(["m1", "m2", "m3"]);
    });

    it("appends a delayed message after its delay, not before the messages sent without one", async ({
      skip,
    }) => {
      if (!ok) skip();
      const e = await endpoint();
      const b = box();
      const c = collector();
      await e.mailbox.hold(b, 2, 1, c.handler, options());
      await e.mailbox.sendLater(b, 2, 1, enc("later"), 300);
      await e.mailbox.sendLater(b, 2, 1, enc("much later"), 3_600_000);
      await e.mailbox.send(b, 2, 1, enc("now"));
      expect((await c.got.waitFor(2, "the delayed message", 30_000)).map((m) => dec(m.body))).toEqual([
        "now",
        "later",
      ]);
    });

    it("drops a re-send with the same id where the broker de-duplicates", async ({ skip }) => {
      if (!ok || !target.dedup) skip();
      const e = await endpoint();
      const b = box();
      const c = collector();
      await e.mailbox.hold(b, 1, 0, c.handler, options());
      await e.mailbox.send(b, 1, 0, enc("a"), { id: "same" });
      await e.mailbox.send(b, 1, 0, enc("a again"), { id: "same" });
      await e.mailbox.send(b, 1, 0, enc("b"), { id: "other" });
      await c.got.waitFor(2);
      await e.mailbox.send(b, 1, 0, enc("c"));
      expect((await c.got.waitFor(3)).map((m) => dec(m.body))).toEqual(["a", "b", "c"]);
    });

    it("counts waiting messages, and keeps acked ones from coming back", async ({ skip }) => {
      if (!ok) skip();
      const e = await endpoint();
      const other = await peer(e);
      const b = box();
      for (let i = 0; i < 3; i++) await e.mailbox.send(b, 1, 0, enc(`m${i}`));
      expect(await e.mailbox.depth(b, 1, 0)).toBe(3);
      const c = collector();
      const hold = await e.mailbox.hold(b, 1, 0, c.handler, options());
      await c.got.waitFor(3);
      await hold.release();
      const again = collector();
      await other.mailbox.hold(b, 1, 0, again.handler, options());
      await other.mailbox.send(b, 1, 0, enc("fresh"));
      expect((await again.got.waitFor(1)).map((m) => dec(m.body))).toEqual(["fresh"]);
      // Acks travel on their own (a broker confirms none): the count drops once they arrived.
      const deadline = Date.now() + HANG_GUARD_MS;
      while ((await other.mailbox.depth(b, 1, 0)) !== 0) {
        if (Date.now() > deadline) throw new Error("hang guard: acked messages still counted");
        await new Promise((r) => setTimeout(r, 20));
      }
    });

    it("refuses invalid names and partitions, and another partition count for a box", async ({ skip }) => {
      if (!ok) skip();
      const e = await endpoint();
      const b = box();
      await expect(e.mailbox.send("bad name", 4, 0, enc("x"))).rejects.toBeInstanceOf(InvalidNameError);
      await expect(e.mailbox.send(b, 0, 0, enc("x"))).rejects.toBeInstanceOf(InvalidNameError);
      await expect(e.mailbox.send(b, 4, 4, enc("x"))).rejects.toBeInstanceOf(InvalidNameError);
      await expect(e.mailbox.send(b, 4, 1.5, enc("x"))).rejects.toBeInstanceOf(InvalidNameError);
      await e.mailbox.send(b, 4, 0, enc("x"));
      const other = await peer(e);
      await expect(other.mailbox.send(b, 8, 0, enc("x"))).rejects.toBeInstanceOf(ConfigError);
      await expect(other.mailbox.hold(b, 2, 0, () => {}, options())).rejects.toBeInstanceOf(ConfigError);
    });

    it("removes a box: a new one of the same name starts empty", async ({ skip }) => {
      if (!ok) skip();
      const e = await endpoint();
      const b = box();
      await e.mailbox.send(b, 2, 0, enc("old"));
      await e.mailbox.remove(b, 2);
      await e.mailbox.send(b, 3, 0, enc("new")); // another partition count: a new box
      const c = collector();
      await e.mailbox.hold(b, 3, 0, c.handler, options());
      expect((await c.got.waitFor(1)).map((m) => dec(m.body))).toEqual(["new"]);
      await e.mailbox.remove(b, 3);
    });

    it("acks of messages handed over before a release are no-ops", async ({ skip }) => {
      if (!ok) skip();
      const e = await endpoint();
      const b = box();
      const first = collector(false);
      const hold: PartitionHold = await e.mailbox.hold(b, 1, 0, first.handler, options());
      await e.mailbox.send(b, 1, 0, enc("m0"));
      await first.got.waitFor(1);
      await hold.release();
      first.got.items[0]!.ack(); // too late: it went back
      const second = collector();
      await e.mailbox.hold(b, 1, 0, second.handler, options());
      expect((await second.got.waitFor(1)).map((m) => dec(m.body))).toEqual(["m0"]);
    });
  });
}
