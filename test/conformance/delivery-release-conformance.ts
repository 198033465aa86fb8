/**
 * The one conformance suite of DeliveryRelease (transports/delivery-release.ts), run against
 * every transport that offers it (NATS). Two transports of one namespace stand for two processes:
 * a holder that went silent, and a coordinator that declared it dead. The broker's own deadline
 * (AckWait) is left at its default (30 s), longer than every wait here, so a delivery that comes
 * back did so because it was released. Waits are on events, bounded by the hang guard.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { DeliveryRelease } from "../../transports/delivery-release.js";
import type { Delivery, Transport } from "../../transports/transport.js";
import { Collector } from "../helpers/async.js";

export interface DeliveryReleaseTarget {
  name: string;
  available(): Promise<boolean>;
  /** A new namespace each time it is called; transports of one namespace share queues. */
  namespace(): string;
  /** A transport of `namespace` (default AckWait). */
  create(namespace: string): Transport;
  /** Deletes what the namespace left on the broker. */
  cleanup(transport: Transport): Promise<void>;
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export function describeDeliveryReleaseConformance(target: DeliveryReleaseTarget): void {
  describe(`delivery release conformance: ${target.name}`, () => {
    let ok = false;
    const open: Transport[] = [];

    beforeAll(async () => {
      ok = await target.available();
    });

    afterEach(async () => {
      const [first] = open;
      if (first) await target.cleanup(first).catch(() => {});
      for (const t of open.splice(0).reverse()) await t.close();
    });

    /** Two connected transports of one namespace: the holder's and the coordinator's. */
    async function pair(): Promise<{ holder: Transport; other: Transport; release: DeliveryRelease }> {
      const ns = target.namespace();
      const holder = target.create(ns);
      const other = target.create(ns);
      open.push(holder, other);
      await holder.connect();
      await other.connect();
      const release = other.deliveryRelease?.();
      if (!release) throw new Error(`${target.name} offers no deliveryRelease()`);
      return { holder, other, release };
    }

    it("names every unsettled delivery of a consumer by a handle, and forgets settled ones", async ({
      skip,
    }) => {
      if (!ok) skip();
      const { holder } = await pair();
      const release = holder.deliveryRelease?.() as DeliveryRelease;
      const got = new Collector<Delivery>();
      const consumer = await holder.consume(["q.rel"], got.push, { concurrency: 4 });
      for (const m of ["a", "b", "c"]) await holder.enqueue("q.rel", enc(m), { priority: 5 });
      const deliveries = await got.waitFor(3);
      const handles = deliveries.map((d) => release.handleOf(d));
      expect(handles.every((h) => typeof h === "string" && h.length > 0)).toBe(true);
      expect(new Set(handles).size).toBe(3);
      expect(release.heldBy(consumer).sort()).toEqual([...handles].sort());
      await deliveries[0]!.ack();
      expect(release.heldBy(consumer).sort()).toEqual(handles.slice(1).sort());
      expect(release.redeliverAfterMs).toBeGreaterThan(0);
    });

    it("sends a silent holder's deliveries back at once when released from another connection", async ({
      skip,
    }) => {
      if (!ok) skip();
      const { holder, other, release } = await pair();
      const held = new Collector<Delivery>();
      const consumer = await holder.consume(["q.rel"], held.push, { concurrency: 2 });
      await holder.enqueue("q.rel", enc("x"), { priority: 5 });
      await holder.enqueue("q.rel", enc("y"), { priority: 5 });
      await held.waitFor(2);
      // The holder goes silent (it never settles); another process releases what it held.
      await release.release(holder.deliveryRelease?.()?.heldBy(consumer) ?? []);
      const again = new Collector<Delivery>();
      await other.consume(["q.rel"], again.push, { concurrency: 2 });
      const back = await again.waitFor(2, "the released deliveries, long before AckWait");
      expect(back.map((d) => dec(d.body)).sort()).toEqual(["x", "y"]);
      expect(back.map((d) => d.deliveryCount)).toEqual([2, 2]);
      for (const d of back) await d.ack();
    });

    it("a delayed release takes the deliveries from their holder at once but hands them out only after the delay", async ({
      skip,
    }) => {
      if (!ok) skip();
      const { holder, other, release } = await pair();
      expect(release.requestsLingerMs).toBeGreaterThanOrEqual(0);
      const held = new Collector<Delivery>();
      const consumer = await holder.consume(["q.rel"], held.push, { concurrency: 1 });
      await holder.enqueue("q.rel", enc("later"), { priority: 5 });
      await held.waitFor(1);
      const releasedAt = Date.now();
      await release.release(holder.deliveryRelease?.()?.heldBy(consumer) ?? [], { delayMs: 1500 });
      const again = new Collector<Delivery>();
      await other.consume(["q.rel"], again.push, { concurrency: 1 });
      const [back] = await again.waitFor(1, "the released delivery, after its delay and long before AckWait");
      // Not before the delay (a little slack for clocks), and back from the broker, not AckWait's.
      expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(1400);
      expect(dec(back!.body)).toBe("later");
      expect(back!.deliveryCount).toBe(2);
      await back!.ack();
    });

    it("a holder that forgets what was released does not send it back again when it stops", async ({
      skip,
    }) => {
      if (!ok) skip();
      const { holder, other, release } = await pair();
      const held = new Collector<Delivery>();
      const consumer = await holder.consume(["q.rel"], held.push, { concurrency: 1 });
      await holder.enqueue("q.rel", enc("once"), { priority: 5 });
      await held.waitFor(1);
      const handles = holder.deliveryRelease?.()?.heldBy(consumer) ?? [];
      await release.release(handles);
      const next = new Collector<Delivery>();
      await other.consume(["q.rel"], next.push, { concurrency: 1 });
      const [copy] = await next.waitFor(1, "the released delivery at its new holder");
      // The old holder hears it was released, forgets it, and stops: no stale "send it back"
      // that would take the message from its new holder and deliver it a third time.
      holder.deliveryRelease?.()?.forget(consumer, new Set(handles));
      expect(holder.deliveryRelease?.()?.heldBy(consumer)).toEqual([]);
      await consumer.stop();
      const third = new Collector<Delivery>();
      await other.consume(["q.rel"], third.push, { concurrency: 1 });
      await other.enqueue("q.rel", enc("marker"), { priority: 5 });
      const [after] = await third.waitFor(1, "the marker");
      expect(dec(after!.body)).toBe("marker");
      expect(next.items).toHaveLength(1);
      await copy!.ack();
      await after!.ack();
      expect(await other.depth("q.rel")).toBe(0);
    });

    it("ignores handles that are not deliveries of its namespace", async ({ skip }) => {
      if (!ok) skip();
      const { other, release } = await pair();
      await expect(
        release.release([
          "",
          "not.an.ack.subject",
          "$JS.ACK.other_ns_q_1.fa-p1.1.1.1.1.0",
          "x".repeat(10_000),
        ]),
      ).resolves.toBeUndefined();
      expect(other.state).toBe("connected");
    });
  });
}
