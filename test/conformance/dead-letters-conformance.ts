/**
 * The one dead-letters conformance suite (transports/dead-letters.ts), run against every adapter:
 * paged lists per queue, inspect, retry (a new message: attempts reset, body and priority kept,
 * dead again if it fails again), delete one, purge, hostile ids and page sizes. Each adapter's
 * *.dead-letters.test.ts calls `describeDeadLettersConformance`. Waiting is on events, bounded.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { InvalidNameError, ValidationError } from "../../src/errors.js";
import { type DeadLetter, type DeadLetters, MAX_DEAD_LETTER_PAGE } from "../../transports/dead-letters.js";
import { DEAD_LETTER_REASON_HEADER, type Delivery, type Transport } from "../../transports/transport.js";
import { Collector } from "../helpers/async.js";

export interface DeadLettersTarget {
  name: string;
  available(): Promise<boolean>;
  /** A new transport in a namespace of its own. */
  create(): Promise<Transport> | Transport;
  cleanup?(transport: Transport): Promise<void>;
  /** Whether `queues()` can list the queues that have dead letters. */
  listsQueues: boolean;
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export function describeDeadLettersConformance(target: DeadLettersTarget): void {
  describe(`dead letters conformance: ${target.name}`, () => {
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

    async function setup(): Promise<{ t: Transport; dl: DeadLetters }> {
      const t = await target.create();
      open.push(t);
      await t.connect();
      const dl = t.deadLetters?.();
      if (!dl) throw new Error(`${target.name} has no deadLetters()`);
      return { t, dl };
    }

    /** Enqueues each body and dead-letters it on its first delivery, one at a time, in order. */
    async function kill(
      t: Transport,
      queue: string,
      bodies: string[],
      options: { priority?: number; headers?: Record<string, string>; failFirst?: number } = {},
    ): Promise<void> {
      for (const body of bodies) {
        const got = new Collector<Delivery>();
        const consumer = await t.consume([queue], got.push, { concurrency: 1 });
        await t.enqueue(queue, enc(body), {
          priority: options.priority ?? 5,
          ...(options.headers ? { headers: options.headers } : {}),
        });
        for (let i = 0; i < (options.failFirst ?? 0); i++) {
          const [d] = (await got.waitFor(i + 1)).slice(i);
          await d!.nack();
        }
        const all = await got.waitFor((options.failFirst ?? 0) + 1);
        await all[all.length - 1]!.deadLetter(`reason of ${body}`);
        await consumer.stop();
      }
    }

    /** Every letter of the queue, page by page. */
    async function all(dl: DeadLetters, queue: string, limit = 2): Promise<DeadLetter[]> {
      const out: DeadLetter[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = await dl.list(queue, { limit, ...(cursor ? { cursor } : {}) });
        out.push(...page.letters);
        cursor = page.next;
        if (cursor === undefined) return out;
      }
      throw new Error("more than 100 pages");
    }

    it("lists a queue's dead letters page by page, oldest first, apart from other queues", async ({
      skip,
    }) => {
      if (!ok) skip();
      const { t, dl } = await setup();
      await kill(t, "q.dla", ["a1", "a2", "a3", "a4", "a5"]);
      await kill(t, "q.dlb", ["b1"]);
      expect(await dl.count("q.dla")).toBe(5);
      expect(await dl.count("q.dlb")).toBe(1);
      expect(await dl.count("q.dlnone")).toBe(0);

      const first = await dl.list("q.dla", { limit: 2 });
      expect(first.letters.map((l) => dec(l.body))).toEqual(["a1", "a2"]);
      expect(first.next).toBeDefined();
      const letters = await all(dl, "q.dla", 2);
      expect(letters.map((l) => dec(l.body))).toEqual(["a1", "a2", "a3", "a4", "a5"]);
      expect(new Set(letters.map((l) => l.id)).size).toBe(5);
      for (const l of letters) {
        expect(l.queue).toBe("q.dla");
        expect(l.reason).toBe(`reason of ${dec(l.body)}`);
        expect(l.headers[DEAD_LETTER_REASON_HEADER]).toBeUndefined();
        if (l.deliveries !== undefined) expect(l.deliveries).toBe(1);
        if (l.deadAt !== undefined) expect(l.deadAt).toBeGreaterThan(Date.now() - 600_000);
      }
      const whole = await dl.list("q.dla", { limit: 5 });
      expect(whole.letters).toHaveLength(5);
      expect(whole.next).toBeUndefined();
      expect((await dl.list("q.dlb")).letters.map((l) => dec(l.body))).toEqual(["b1"]);
      expect(await dl.list("q.dlnone")).toEqual({ letters: [], next: undefined });
      if (target.listsQueues) {
        const queues = await dl.queues();
        expect(queues).toContain("q.dla");
        expect(queues).toContain("q.dlb");
        expect(queues).not.toContain("q.dlnone");
      }
    });

    it("skips a letter removed between two pages, and never repeats one", async ({ skip }) => {
      if (!ok) skip();
      const { t, dl } = await setup();
      await kill(t, "q.dlc", ["c1", "c2", "c3", "c4"]);
      const first = await dl.list("q.dlc", { limit: 2 });
      const rest = await dl.list("q.dlc", { limit: 2, cursor: first.next });
      expect(await dl.delete("q.dlc", rest.letters[0]!.id)).toBe(true);
      const again = await dl.list("q.dlc", { limit: 2, cursor: first.next });
      expect(again.letters.map((l) => dec(l.body))).toEqual(["c4"]);
    });

    it("inspects one letter by id, and answers undefined for unknown or hostile ids", async ({ skip }) => {
      if (!ok) skip();
      const { t, dl } = await setup();
      await kill(t, "q.dld", ["d1", "d2"], { priority: 10, headers: { traceparent: "00-abc-def-01" } });
      const [, second] = (await dl.list("q.dld")).letters;
      const letter = await dl.get("q.dld", second!.id);
      expect(dec(letter!.body)).toBe("d2");
      expect(letter!.priority).toBe(10);
      expect(letter!.headers["traceparent"]).toBe("00-abc-def-01");
      expect(letter!.reason).toBe("reason of d2");
      for (const id of [
        "",
        "0",
        "-1",
        "x",
        "../1",
        "99999999999999999999",
        "1e3",
        " 1",
        "%00",
        "a".repeat(5000),
      ]) {
        expect(await dl.get("q.dld", id), `id ${JSON.stringify(id.slice(0, 20))}`).toBeUndefined();
        expect(await dl.delete("q.dld", id)).toBe(false);
        expect(await dl.retry("q.dld", id)).toBe(false);
      }
      expect(await dl.get("q.dlother", second!.id)).toBeUndefined();
      expect(await dl.count("q.dld")).toBe(2);
    });

    it("retries a letter: a new message with attempts reset, the same body, priority and headers", async ({
      skip,
    }) => {
      if (!ok) skip();
      const { t, dl } = await setup();
      await kill(t, "q.dle", ["e1", "e2"], {
        priority: 20,
        headers: { traceparent: "00-t-s-01" },
        failFirst: 2,
      });
      const [first] = (await dl.list("q.dle")).letters;
      expect(first!.deliveries === undefined || first!.deliveries === 3).toBe(true);
      expect(await dl.retry("q.dle", first!.id)).toBe(true);
      expect(await dl.retry("q.dle", first!.id)).toBe(false);
      expect(await dl.get("q.dle", first!.id)).toBeUndefined();
      expect(await dl.count("q.dle")).toBe(1);

      const got = new Collector<Delivery>();
      const consumer = await t.consume(["q.dle"], got.push, { concurrency: 1 });
      const [d] = await got.waitFor(1);
      expect(dec(d!.body)).toBe("e1");
      expect(d!.deliveryCount).toBe(1);
      expect(d!.priority).toBe(20);
      expect(d!.headers["traceparent"]).toBe("00-t-s-01");
      expect(d!.headers[DEAD_LETTER_REASON_HEADER]).toBeUndefined();

      // It fails again: dead again, not lost.
      await d!.deadLetter("failed again");
      await consumer.stop();
      const letters = await all(dl, "q.dle");
      expect(letters.map((l) => [dec(l.body), l.reason])).toEqual([
        ["e2", "reason of e2"],
        ["e1", "failed again"],
      ]);
    });

    it("retries with a new body when given one", async ({ skip }) => {
      if (!ok) skip();
      const { t, dl } = await setup();
      await kill(t, "q.dlf", ["f1"]);
      const [letter] = (await dl.list("q.dlf")).letters;
      expect(await dl.retry("q.dlf", letter!.id, { body: enc("f1-fixed") })).toBe(true);
      const got = new Collector<Delivery>();
      await t.consume(["q.dlf"], got.push, { concurrency: 1 });
      const [d] = await got.waitFor(1);
      expect(dec(d!.body)).toBe("f1-fixed");
      await d!.ack();
    });

    it("deletes one letter and purges a queue's letters", async ({ skip }) => {
      if (!ok) skip();
      const { t, dl } = await setup();
      await kill(t, "q.dlg", ["g1", "g2", "g3"]);
      await kill(t, "q.dlh", ["h1"]);
      const [, g2] = (await dl.list("q.dlg")).letters;
      expect(await dl.delete("q.dlg", g2!.id)).toBe(true);
      expect(await dl.delete("q.dlg", g2!.id)).toBe(false);
      expect((await all(dl, "q.dlg")).map((l) => dec(l.body))).toEqual(["g1", "g3"]);
      expect(await dl.purge("q.dlg")).toBe(2);
      expect(await dl.count("q.dlg")).toBe(0);
      expect((await dl.list("q.dlg")).letters).toEqual([]);
      expect(await dl.purge("q.dlg")).toBe(0);
      expect(await dl.count("q.dlh")).toBe(1);
      expect(await t.depth("q.dlg")).toBe(0);
    });

    it("refuses bad page sizes and queue names with typed errors", async ({ skip }) => {
      if (!ok) skip();
      const { dl } = await setup();
      for (const limit of [0, -1, 1.5, MAX_DEAD_LETTER_PAGE + 1, Number.NaN]) {
        await expect(dl.list("q.dli", { limit })).rejects.toBeInstanceOf(ValidationError);
      }
      for (const queue of ["", "a b", "q.>", "q..x"]) {
        await expect(dl.list(queue)).rejects.toBeInstanceOf(InvalidNameError);
        await expect(dl.purge(queue)).rejects.toBeInstanceOf(InvalidNameError);
      }
      // An unknown cursor starts nowhere odd: it lists nothing or from the start, never throws.
      await expect(dl.list("q.dli", { cursor: "not-a-cursor" })).resolves.toBeDefined();
    });
  });
}
