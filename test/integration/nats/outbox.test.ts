/**
 * The outbox of the NATS transport, on a stand-in connection: what a turn of the event loop sends
 * reaches the client together, in order, after the microtasks of that turn; pull requests wait
 * for the next flush or the end of the turn; a refused publish is reported to its sender.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it, vi } from "vitest";
import { Outbox } from "../../../transports/nats/nats-outbox.js";

class FakeConnection {
  closed = false;
  readonly sent: Array<{ subject: string; reply?: string }> = [];

  publish(subject: string, _data: Uint8Array, options?: { reply?: string }): void {
    if (this.closed) throw new Error("closed");
    this.sent.push(options?.reply ? { subject, reply: options.reply } : { subject });
  }

  isClosed(): boolean {
    return this.closed;
  }
}

const bytes = new Uint8Array(1);
const endOfTurn = () => new Promise((resolve) => setImmediate(resolve));

function outbox(): { fake: FakeConnection; box: Outbox; flushes: () => number } {
  const fake = new FakeConnection();
  const box = new Outbox(fake as unknown as NatsConnection);
  const flush = vi.spyOn(box, "flush");
  return { fake, box, flushes: () => flush.mock.calls.length };
}

describe("NATS outbox", () => {
  it("hands what a turn sends to the client at once, in order, after the turn's microtasks", async () => {
    const { fake, box, flushes } = outbox();
    box.send("event", bytes);
    for (let i = 0; i < 5; i++) await Promise.resolve(); // the promise hops to an ack
    box.send("ack", bytes);
    expect(fake.sent).toEqual([]);
    await endOfTurn();
    expect(fake.sent.map((m) => m.subject)).toEqual(["event", "ack"]);
    expect(flushes()).toBe(1);
  });

  it("sends a pull with the next flush, or at the end of the turn", async () => {
    const { fake, box, flushes } = outbox();
    box.sendLazily("pull-1", bytes, "inbox.1");
    await Promise.resolve();
    expect(fake.sent).toEqual([]);
    await endOfTurn();
    expect(fake.sent).toEqual([{ subject: "pull-1", reply: "inbox.1" }]);

    box.sendLazily("pull-2", bytes, "inbox.2");
    box.send("ack", bytes);
    // Right after the turn's microtasks, before the end of the turn: the pull went with the ack.
    await new Promise((resolve) => queueMicrotask(() => process.nextTick(resolve)));
    expect(fake.sent.slice(1).map((m) => m.subject)).toEqual(["pull-2", "ack"]);
    expect(flushes()).toBe(2);
  });

  it("flushes at once when asked, keeping the order", () => {
    const { fake, box } = outbox();
    box.send("a", bytes);
    box.sendLazily("b", bytes, "r");
    box.flush();
    expect(fake.sent.map((m) => m.subject)).toEqual(["a", "b"]);
  });

  it("tells the sender when the client refuses a message, and says when it is closed", async () => {
    const { fake, box } = outbox();
    const refused: unknown[] = [];
    box.send("lost", bytes, "reply", undefined, (error) => refused.push(error));
    fake.closed = true;
    expect(box.open).toBe(false);
    await endOfTurn();
    expect(refused).toHaveLength(1);
    expect(fake.sent).toEqual([]);
  });
});
