/**
 * Fuzz of the event bus (the part issue 15's fuzz left): seeded hostile types, patterns, groups,
 * data and options at publish/subscribe/deadLetters/deleteGroup; handlers that throw hostile values
 * or never resolve; the `fastagentic events publish|tail` command with hostile argv. Every call
 * works or rejects with a FastAgenticError with a string code and a message without stack or
 * password; every published event of a served type is handled or dead-lettered (none left
 * unsettled); a never-resolving handler holds no more than its concurrency; nothing crashes, and
 * afterwards a normal event still goes through. On memory, NATS and RabbitMQ.
 *
 * Reproduce a failure with the seed it prints: FA_FUZZ_SEED=<seed> npx vitest run <this file>.
 */
import { EventBus, type EventSubscription, silentLogger } from "fastagentic";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Transport } from "../../../transports/transport.js";
import { CliProcess } from "../../chaos/harness.js";
import { AMQP_URL, NATS_URL, uniqueNamespace } from "../../helpers/brokers.js";
import {
  hostileName,
  randomEventData,
  randomEventType,
  randomGroup,
  randomPattern,
  randomPublishOptions,
  randomSubscribeOptions,
} from "../../helpers/fuzz-bus-values.js";
import { Rng, randomReturn, randomThrowable } from "../../helpers/fuzz-values.js";
import { deleteNamespace as deleteAmqpNamespace } from "../amqp/amqp-helpers.js";
import { describeEachTransport } from "./each-transport.js";
import { brief, expectNoLeak, expectSettled, FUZZ, iterate, settle, shown } from "./fuzz-checks.js";

/** The name of a thenable's method (a hostile thenable below). */
const THEN = ["th", "en"].join("");

/** Polls until `check` holds, or fails naming `what` after `ms` (a hang guard, not a timing assertion). */
async function until(check: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`hang guard: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describeEachTransport("events fuzz", (t) => {
  let transport: Transport;
  let bus: EventBus;
  const crashes: unknown[] = [];
  const onCrash = (error: unknown) => crashes.push(error);
  /** Groups the fuzz may have created (valid names only), deleted at the end. */
  const made = new Map<string, { group: string; pattern: string }>();

  beforeAll(async () => {
    if (!t.ready) return;
    process.on("unhandledRejection", onCrash);
    process.on("uncaughtException", onCrash);
    transport = t.make();
    bus = new EventBus({ transport, logger: silentLogger });
  });

  afterAll(async () => {
    process.off("unhandledRejection", onCrash);
    process.off("uncaughtException", onCrash);
    if (!t.ready) return;
    for (const { group, pattern } of made.values()) await bus.deleteGroup(group, pattern).catch(() => {});
    await bus.close();
    await transport.close();
  }, 60_000);

  it("publish, subscribe, deadLetters and deleteGroup work or reject with a typed error", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    await iterate(t.kind, "api", async (rng, where) => {
      switch (rng.int(5)) {
        case 0:
        case 1: {
          const type = randomEventType(rng);
          const data = randomEventData(rng);
          const options = randomPublishOptions(rng);
          const r = await settle(where, () => bus.publish(type as string, data, options as never));
          expectSettled(r, `${where} publish(${shown(type)}, ${brief(data)}, ${brief(options)})`);
          return;
        }
        case 2: {
          const pattern = randomPattern(rng);
          const options = randomSubscribeOptions(rng);
          const handler = rng.chance(0.9) ? () => {} : hostileName(rng);
          const at = `${where} subscribe(${shown(pattern)}, ${typeof handler}, ${brief(options)})`;
          const r = await settle(at, () =>
            bus.subscribe(pattern as string, handler as never, options as never),
          );
          expectSettled(r, at);
          if (r.ok) {
            const sub = r.value as EventSubscription;
            made.set(`${sub.group}|${sub.pattern}`, { group: sub.group, pattern: sub.pattern });
            await sub.close({ timeoutMs: 1000 });
          }
          return;
        }
        case 3: {
          const group = randomGroup(rng);
          const pattern = randomPattern(rng);
          const limit = rng.pick([undefined, 1, 0, -1, 1e9, NaN, "5", null]);
          const r = await settle(where, () =>
            bus.deadLetters(
              group as string,
              pattern as string,
              limit === undefined ? undefined : ({ limit } as never),
            ),
          );
          expectSettled(
            r,
            `${where} deadLetters(${shown(group)}, ${shown(pattern)}, { limit: ${shown(limit)} })`,
          );
          return;
        }
        default: {
          const group = randomGroup(rng);
          const pattern = randomPattern(rng);
          const r = await settle(where, () =>
            rng.chance(0.5) ? bus.deleteGroup(group as string, pattern as string) : bus.groups(),
          );
          expectSettled(r, `${where} deleteGroup/groups(${shown(group)}, ${shown(pattern)})`);
        }
      }
    });
  });

  it("handlers that throw hostile values, return anything or never resolve: every event is handled or dead-lettered", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    const where = `[FA_FUZZ_SEED=${FUZZ.seed}] ${t.kind} handlers`;
    const rng = new Rng(FUZZ.seed).fork(`${t.kind}/handlers`);
    const behave = (seed: number): unknown => {
      const r = new Rng(seed);
      const pick = r.int(10);
      if (pick < 4) throw randomThrowable(r);
      if (pick < 6) return Promise.reject(randomThrowable(r));
      if (pick < 7) return new Promise(() => {}); // never resolves: its timeout fails the attempt
      // A thenable whose then() throws: what the runner must survive.
      if (pick < 8)
        return Object.defineProperty({}, THEN, {
          value: () => {
            throw randomThrowable(r);
          },
        });
      return rng.chance(0.5) ? randomReturn(r) : Promise.resolve(randomReturn(r));
    };
    const sub = await bus.subscribe("fz.h", (event) => behave((event.data as { seed: number }).seed), {
      group: "fz-h",
      retries: 1,
      retryBackoff: { initialMs: 1, maxMs: 5 },
      timeoutMs: 150,
      concurrency: 4,
    });
    made.set("fz-h|fz.h", { group: "fz-h", pattern: "fz.h" });
    const count = Math.min(FUZZ.iterations, 40);
    for (let i = 0; i < count; i++) await bus.publish("fz.h", { seed: rng.int(2 ** 31) });
    await until(
      () => sub.stats.handled + sub.stats.deadLettered >= count,
      `${where}: ${count} events published, ${JSON.stringify(sub.stats)} settled`,
    );
    expect(sub.stats.handled + sub.stats.deadLettered, where).toBe(count);
    const letters = await bus.deadLetters("fz-h", "fz.h", { limit: 1000 });
    expect(letters.length, where).toBe(sub.stats.deadLettered);
    for (const letter of letters) {
      expect(typeof letter.reason, where).toBe("string");
      expectNoLeak(letter.reason, where);
    }
    await sub.close({ timeoutMs: 1000 });
  });

  it("a handler that never resolves (no timeout) holds no more than its concurrency, and closes", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    const where = `[FA_FUZZ_SEED=${FUZZ.seed}] ${t.kind} hung`;
    let started = 0;
    const sub = await bus.subscribe(
      "fz.a",
      () => {
        started++;
        return new Promise(() => {});
      },
      { group: "fz-hung", timeoutMs: 0, concurrency: 3 },
    );
    made.set("fz-hung|fz.a", { group: "fz-hung", pattern: "fz.a" });
    for (let i = 0; i < 30; i++) await bus.publish("fz.a", { i });
    await until(() => started >= 3, `${where}: 3 handlers started (${started})`);
    await new Promise((r) => setTimeout(r, 300));
    expect(started, `${where}: handlers started past concurrency 3`).toBe(3);
    const info = (await bus.groups()).find((g) => g.group === "fz-hung");
    if (info?.inFlight !== undefined) expect(info.inFlight, where).toBeLessThanOrEqual(3);
    const closed = await settle(where, () => sub.close({ timeoutMs: 200 }), 10_000);
    expectSettled(closed, `${where} close()`);
  });

  it("fastagentic events publish|tail with hostile argv exit 0 or 2 with a clear message", async ({
    skip,
  }) => {
    if (!t.ready || t.kind === "memory") skip();
    const url = t.kind === "nats" ? NATS_URL : AMQP_URL;
    const namespace = uniqueNamespace("fzcli");
    try {
      await iterate(
        t.kind,
        "cli",
        async (rng, where) => {
          const arg = () => {
            const name = hostileName(rng);
            return typeof name === "string" && !name.includes("\u0000") ? name : String(rng.int(100));
          };
          const tail = rng.chance(0.4);
          const args = tail
            ? [
                "events",
                "tail",
                rng.chance(0.3) ? "fz.>" : arg(),
                "--max",
                rng.pick(["1", "0", "abc", "1e3", "-1"]),
              ]
            : [
                "events",
                "publish",
                rng.chance(0.3) ? "fz.a" : arg(),
                rng.pick(['{"a":1}', "{x", "1", "", "null"]),
              ];
          if (rng.chance(0.3)) args.push(rng.pick(["--key", "--id", "--group", "--from"]), arg());
          if (tail && rng.chance(0.3))
            args.push("--from", rng.pick(["all", "#0", "#1", "seq:x", "2026-13-45", "yesterday"]));
          if (rng.chance(0.1)) args.push("--bogus");
          args.push("--transport", url, "--namespace", namespace);
          const at = `${where} fastagentic ${args.map((a) => JSON.stringify(a.slice(0, 40))).join(" ")}`;
          const p = new CliProcess(args);
          try {
            // A valid tail follows events until it is stopped: SIGINT must end it with exit 0.
            let exit = await p.waitExit(at, 8000).catch(() => undefined);
            if (exit === undefined && tail) {
              p.signal("SIGINT");
              exit = await p.waitExit(`${at} after SIGINT`, 8000);
            }
            if (exit === undefined) throw new Error(`${at}: still running after 8 s`);
            await p.waitClosed();
            expectNoLeak(p.stderr + p.stdout, at);
            expect([0, 2], `${at}: exit ${JSON.stringify(exit)}\n${p.stderr.slice(0, 500)}`).toContain(
              exit.code,
            );
            if (exit.code === 2) expect(p.stderr, at).toMatch(/fastagentic: |error: /);
          } finally {
            await p.destroy();
          }
        },
        6,
      );
    } finally {
      // What the commands left in their namespace (groups, streams, queues) goes with it.
      const cleanup = t.make(namespace);
      await cleanup.connect().catch(() => {});
      cleanup.eventLog?.();
      await cleanup.close().catch(() => {});
      if (t.kind === "amqp") await deleteAmqpNamespace(namespace).catch(() => {});
    }
  }, 120_000);

  it("afterwards nothing crashed and a normal event is handled", async ({ skip }) => {
    if (!t.ready) skip();
    const where = `[FA_FUZZ_SEED=${FUZZ.seed}] ${t.kind}`;
    expect(crashes.map(shown), `${where}: unhandled rejections or exceptions`).toEqual([]);
    const seen: unknown[] = [];
    const sub = await bus.subscribe("fz.b", (e) => void seen.push(e.data), { group: "fz-after" });
    made.set("fz-after|fz.b", { group: "fz-after", pattern: "fz.b" });
    await bus.publish("fz.b", { after: "fuzz" });
    await until(() => seen.length > 0, `${where}: the normal event`);
    expect(seen, where).toEqual([{ after: "fuzz" }]);
    await sub.close();
  });
});
