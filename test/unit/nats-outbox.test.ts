import type { NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { Outbox } from "../../transports/nats/nats-outbox.js";

/** A client that records what it is handed, in order. */
function recordingClient(): { nc: NatsConnection; subjects: string[] } {
  const subjects: string[] = [];
  const nc = {
    isClosed: () => false,
    publish: (subject: string) => {
      subjects.push(subject);
    },
  } as unknown as NatsConnection;
  return { nc, subjects };
}

describe("NATS outbox", () => {
  it("hands a burst that never leaves the microtask queue to the client in slices, in order", async () => {
    const { nc, subjects } = recordingClient();
    const outbox = new Outbox(nc);
    const total = Outbox.SLICE * 2 + 10;
    const seenDuringBurst: number[] = [];
    // A publisher awaiting each send: only microtasks, the outbox's own flush (nextTick) waits.
    for (let i = 0; i < total; i++) {
      outbox.send(`s.${i}`, new Uint8Array(0));
      seenDuringBurst.push(subjects.length);
      await Promise.resolve();
    }
    // The first two slices left while the burst went on; the tail leaves with the turn's flush.
    expect(seenDuringBurst[Outbox.SLICE - 2]).toBe(0);
    expect(seenDuringBurst[Outbox.SLICE - 1]).toBe(Outbox.SLICE);
    expect(seenDuringBurst[total - 1]).toBe(Outbox.SLICE * 2);
    await new Promise((r) => setImmediate(r));
    expect(subjects).toEqual(Array.from({ length: total }, (_, i) => `s.${i}`));
  });

  it("sends what one turn gives in one piece when it stays under a slice", async () => {
    const { nc, subjects } = recordingClient();
    const outbox = new Outbox(nc);
    for (let i = 0; i < 10; i++) outbox.send(`s.${i}`, new Uint8Array(0));
    expect(subjects).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(subjects).toHaveLength(10);
  });
});
