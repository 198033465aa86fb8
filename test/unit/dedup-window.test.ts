/**
 * The de-duplication window kept in this process (AMQP and in-memory transports): exact expiry,
 * a bounded size with the oldest forgotten first, and failed sends forgotten.
 */
import { describe, expect, it } from "vitest";
import { SendOnce } from "../../transports/amqp/amqp-tracking.js";
import { DedupWindow } from "../../transports/dedup-window.js";

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe("DedupWindow", () => {
  it("reports a key added again within windowMs as a duplicate, and not after", () => {
    const c = clock();
    const w = new DedupWindow(1000, 100, c.now);
    expect(w.add("a")).toBeDefined();
    c.advance(999);
    expect(w.add("a")).toBeUndefined();
    c.advance(1);
    expect(w.add("a")).toBeDefined(); // the window of the first has passed: a new record
    c.advance(999);
    expect(w.add("a")).toBeUndefined(); // counted from the new record
  });

  it("keeps at most maxEntries keys, forgetting the oldest first, however many went through", () => {
    const c = clock();
    const w = new DedupWindow(60_000, 100, c.now);
    for (let i = 0; i < 50_000; i++) expect(w.add(`k${i}`)).toBeDefined();
    expect(w.size).toBe(100);
    expect(w.add("k49999")).toBeUndefined();
    expect(w.add("k49900")).toBeUndefined();
    expect(w.add("k49899")).toBeDefined(); // forgotten: sent again
  });

  it("forgets expired keys as new ones arrive", () => {
    const c = clock();
    const w = new DedupWindow(1000, 100_000, c.now);
    for (let i = 0; i < 10_000; i++) {
      w.add(`k${i}`);
      c.advance(1);
    }
    expect(w.size).toBe(1000);
  });

  it("forget() drops a record unless a newer one replaced it", () => {
    const c = clock();
    const w = new DedupWindow(1000, 100, c.now);
    const first = w.add("a") as number;
    w.forget("a", first);
    const second = w.add("a") as number; // forgotten: recorded again
    expect(second).toBeDefined();
    w.forget("a", first); // stale: the newer record stays
    expect(w.add("a")).toBeUndefined();
  });

  it("remembers nothing with a window of 0", () => {
    const w = new DedupWindow(0, 100);
    expect(w.add("a")).toBeDefined();
    expect(w.add("a")).toBeDefined();
    expect(w.size).toBe(0);
  });
});

describe("SendOnce (AMQP enqueues with a dedupId)", () => {
  it("sends a key once within the window; a duplicate meanwhile shares the first send's outcome", async () => {
    const c = clock();
    const once = new SendOnce(1000, 100, c.now);
    let sends = 0;
    let confirm!: () => void;
    const send = () => {
      sends++;
      return new Promise<void>((resolve) => {
        confirm = resolve;
      });
    };
    const first = once.run("q\u0000a", send);
    let duplicateDone = false;
    const duplicate = once.run("q\u0000a", send).then(() => {
      duplicateDone = true;
    });
    await Promise.resolve();
    expect(sends).toBe(1);
    expect(duplicateDone).toBe(false); // waits for the first send's confirm
    confirm();
    await Promise.all([first, duplicate]);
    expect(duplicateDone).toBe(true);
    await once.run("q\u0000a", send); // after the confirm: still a duplicate, resolved at once
    expect(sends).toBe(1);
  });

  it("forgets a failed send, so that it can be sent again; the duplicate waiting for it fails too", async () => {
    const once = new SendOnce(60_000, 100);
    let sends = 0;
    const failing = () => {
      sends++;
      return Promise.reject(new Error("channel closed"));
    };
    const first = once.run("k", failing);
    const duplicate = once.run("k", failing);
    await expect(first).rejects.toThrow("channel closed");
    await expect(duplicate).rejects.toThrow("channel closed");
    expect(sends).toBe(1);
    await once.run("k", () => {
      sends++;
      return Promise.resolve();
    });
    expect(sends).toBe(2);
  });

  it("shares a send under way even when the full window has forgotten its key", async () => {
    const once = new SendOnce(60_000, 1);
    let sends = 0;
    const confirms: Array<() => void> = [];
    const send = () => {
      sends++;
      return new Promise<void>((resolve) => confirms.push(resolve));
    };
    const first = once.run("a", send);
    const other = once.run("b", send); // the window holds one key: "a" is forgotten
    const again = once.run("a", send);
    expect(again).toBe(first);
    expect(sends).toBe(2);
    for (const confirm of confirms) confirm();
    await Promise.all([first, other, again]);
    const last = once.run("a", send); // confirmed and forgotten by the window: sent again
    expect(sends).toBe(3);
    confirms[2]?.();
    await last;
  });

  it("sends every time with a window of 0", async () => {
    const once = new SendOnce(0, 100);
    let sends = 0;
    const send = () => {
      sends++;
      return Promise.resolve();
    };
    await once.run("k", send);
    await once.run("k", send);
    expect(sends).toBe(2);
  });
});
