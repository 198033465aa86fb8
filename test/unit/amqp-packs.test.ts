import type { Options } from "amqplib";
import { describe, expect, it } from "vitest";
import { H_PACK } from "../../transports/amqp/amqp-names.js";
import {
  decodePack,
  encodePack,
  MAX_PACK_BYTES,
  Packer,
  PackSizes,
  prefetchFor,
} from "../../transports/amqp/amqp-packs.js";

interface Sent {
  queue: string;
  content: Buffer;
  properties: Options.Publish;
}

/** A Packer whose sends are recorded and confirmed (or refused) at once. */
function recording(maxTasks: number, refuse = false) {
  const sent: Sent[] = [];
  const packer = new Packer(maxTasks, (queue, content, properties) => {
    sent.push({ queue, content, properties });
    return refuse ? Promise.reject(new Error("no")) : Promise.resolve();
  });
  return { sent, packer };
}

const plain = (priority: number): Options.Publish => ({ persistent: true, priority });
const b = (s: string) => Buffer.from(s);

describe("amqp-packs", () => {
  it("round-trips bodies, empty ones included, and refuses what is not a pack of that count", () => {
    const parts = [b("one"), b(""), b("three")];
    const packed = encodePack(parts);
    expect(decodePack(packed, 3)?.map(String)).toEqual(["one", "", "three"]);
    expect(decodePack(packed, 2)).toBeUndefined(); // bytes left over
    expect(decodePack(packed, 4)).toBeUndefined(); // too few
    expect(decodePack(b('{"v":1}'), 2)).toBeUndefined();
  });

  it("groups one turn's enqueues by queue and priority; a lone task stays a plain message", async () => {
    const { sent, packer } = recording(8);
    await Promise.all([
      packer.add("a", b("1"), plain(1)),
      packer.add("a", b("2"), plain(1)),
      packer.add("a", b("3"), plain(2)),
      packer.add("b", b("4"), plain(1)),
      packer.add("a", b("5"), plain(1)),
    ]);
    expect(sent).toHaveLength(3);
    const [a1, a2, b1] = sent;
    expect(a1?.queue).toBe("a");
    expect(a1?.properties).toEqual({ persistent: true, priority: 1, headers: { [H_PACK]: "3" } });
    expect(decodePack(a1!.content, 3)?.map(String)).toEqual(["1", "2", "5"]);
    expect(a2?.properties).toEqual(plain(2));
    expect(String(a2?.content)).toBe("3");
    expect(b1?.queue).toBe("b");
    expect(String(b1?.content)).toBe("4");
    expect(packer.tasksPerMessage("a")).toBe(2); // 4 tasks in 2 messages
    expect(packer.tasksPerMessage("c")).toBe(1);
  });

  it("starts another message at maxTasks and before MAX_PACK_BYTES", async () => {
    const { sent, packer } = recording(3);
    await Promise.all(["1", "2", "3", "4"].map((x) => packer.add("q", b(x), plain(1))));
    expect(sent.map((s) => s.properties.headers?.[H_PACK] ?? "1")).toEqual(["3", "1"]);

    const big = recording(8);
    const quarter = Buffer.alloc(MAX_PACK_BYTES / 4); // three fit with their length prefixes, four do not
    await Promise.all([1, 2, 3, 4, 5].map(() => big.packer.add("q", quarter, plain(1))));
    expect(big.sent.map((s) => s.properties.headers?.[H_PACK])).toEqual(["3", "2"]);
    for (const s of big.sent) expect(s.content.length).toBeLessThanOrEqual(MAX_PACK_BYTES);
  });

  it("fails every enqueue of a message the broker refused", async () => {
    const { packer } = recording(8, true);
    const results = await Promise.allSettled([
      packer.add("q", b("1"), plain(1)),
      packer.add("q", b("2"), plain(1)),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
  });

  it("remembers the largest pack over two windows of messages, then forgets it", () => {
    const sizes = new PackSizes(4);
    expect(sizes.largest).toBe(4);
    sizes.note(8, 3);
    expect(sizes.largest).toBe(8);
    sizes.note(1, 3);
    sizes.note(1, 3); // first window ends: it held an 8
    expect(sizes.largest).toBe(8);
    for (let i = 0; i < 3; i++) sizes.note(1, 3); // a window of singles
    expect(sizes.largest).toBe(1);
  });

  it("sets a prefetch that never lets in more tasks than the free slots, packs of the largest size seen", () => {
    // Single messages: the concurrency, as a plain prefetch.
    expect(prefetchFor(0, 128, 128, 1)).toBe(128);
    expect(prefetchFor(100, 28, 128, 1)).toBe(128);
    // Packs of 8 on 128 slots: 16 messages; 7 free slots wait for an eighth.
    expect(prefetchFor(0, 128, 128, 8)).toBe(16);
    expect(prefetchFor(16, 7, 128, 8)).toBe(16);
    expect(prefetchFor(16, 8, 128, 8)).toBe(17);
    // A small worker takes one more message whenever a slot is free (the excess goes back).
    expect(prefetchFor(1, 2, 3, 8)).toBe(2);
    expect(prefetchFor(0, 3, 3, 8)).toBe(1);
    // Nothing free: what is in hand, and never 0.
    expect(prefetchFor(5, 0, 3, 8)).toBe(5);
    expect(prefetchFor(0, 0, 0, 1)).toBe(1);
  });
});
