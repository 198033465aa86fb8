/**
 * Seeded hostile inputs for the event bus and entities (test/integration/hostile/*-fuzz.test.ts):
 * event types and patterns, publish and subscribe options, entity names, ids and events. Valid
 * names come from small fixed sets, so a run creates a bounded number of broker objects.
 */
import {
  type Rng,
  randomCount,
  randomDuration,
  randomJson,
  randomNonJson,
  randomString,
  revokedProxy,
  throwingProxy,
} from "./fuzz-values.js";

/** Names any API may be given: empty, dots, spaces, wildcards in the middle, unicode, huge, not strings. */
export function hostileName(rng: Rng): unknown {
  return rng.pick<() => unknown>([
    () => randomString(rng),
    () =>
      rng.pick([
        "",
        " ",
        ".",
        "..",
        "a..b",
        ".a",
        "a.",
        "a b",
        "a.>.b",
        ">.a",
        "a.*b",
        "#",
        "a/b",
        "a\u0000b",
      ]),
    () => rng.pick(["é", "😀", "ordér.créé", "\ud800", "a\nb", "\u202e"]),
    () => rng.pick(["__proto__", "constructor", "prototype", "toString", "__proto__.x", "hasOwnProperty"]),
    () => "n".repeat(rng.pick([64, 65, 200, 201, 256, 257, 4096, 100_000])),
    () => rng.pick([null, undefined, 0, 42, NaN, true, 10n, {}, [], ["a"], () => "a.b"]),
    () => Symbol("name"),
    () => throwingProxy(),
    revokedProxy,
    () => ({ toString: () => "a.b" }),
  ])();
}

/** Event types: a few valid ones (delivered to the fuzz groups) or a hostile name. */
export function randomEventType(rng: Rng): unknown {
  return rng.chance(0.4) ? rng.pick(["fz.a", "fz.b", "fz.a.b", "fz.h"]) : hostileName(rng);
}

/** Patterns: a few valid ones (so a run makes a bounded number of groups), wildcards, or hostile. */
export function randomPattern(rng: Rng): unknown {
  return rng.chance(0.4)
    ? rng.pick(["fz.*", "fz.>", "fz.a", "*.a", ">", "fz.*.b"])
    : rng.chance(0.3)
      ? rng.pick([">.a", "fz.>.>", "**", "fz.*>", "*", "fz..*"])
      : hostileName(rng);
}

/** Groups: two valid ones, or hostile. */
export function randomGroup(rng: Rng): unknown {
  return rng.chance(0.5) ? rng.pick(["fz-g1", "fz-g2"]) : hostileName(rng);
}

/** A value in place of a whole options object. */
function hostileOptions(rng: Rng): unknown {
  return rng.pick<() => unknown>([
    () => null,
    () => 42,
    () => "fast",
    () => [],
    () => throwingProxy(),
    revokedProxy,
    () =>
      new Proxy(
        { group: "fz-g1" },
        {
          get: () => {
            throw new Error("get trap");
          },
        },
      ),
    () => Object.create({ group: "fz-g1" }),
    () => randomNonJson(rng),
  ])();
}

/** Event data: JSON, values that cannot travel, or too large. */
export function randomEventData(rng: Rng): unknown {
  if (rng.chance(0.05)) return "d".repeat(rng.pick([2 * 1024 * 1024, 9 * 1024 * 1024]));
  if (rng.chance(0.25)) return rng.chance(0.5) ? randomNonJson(rng) : hostileName(rng);
  return randomJson(rng);
}

export function randomPublishOptions(rng: Rng): unknown {
  if (rng.chance(0.1)) return hostileOptions(rng);
  const o: Record<string, unknown> = {};
  if (rng.chance(0.4)) o["key"] = rng.chance(0.5) ? `k-${rng.int(3)}` : hostileName(rng);
  if (rng.chance(0.3)) o["id"] = rng.chance(0.3) ? `fz-${rng.int(1e9)}` : hostileName(rng);
  if (rng.chance(0.2))
    o["headers"] = rng.pick<() => unknown>([
      () => ({ a: "b" }),
      () => ({ traceparent: "garbage" }),
      () => ({ a: 1 }),
      () => ({ [randomString(rng, 4)]: randomString(rng) }),
      () => hostileName(rng),
      () => hostileOptions(rng),
    ])();
  if (rng.chance(0.2)) o["durable"] = rng.pick([true, false, "false", 0, null]);
  if (rng.chance(0.05)) o[randomString(rng, 5) || "unknownKey"] = 1;
  return o;
}

export function randomSubscribeOptions(rng: Rng): unknown {
  if (rng.chance(0.1)) return hostileOptions(rng);
  const o: Record<string, unknown> = {};
  if (rng.chance(0.9)) o["group"] = randomGroup(rng);
  if (rng.chance(0.3))
    o["from"] = rng.pick<() => unknown>([
      () => rng.pick(["new", "all", "NEW", "", "first"]),
      () => ({ time: rng.pick([0, Date.now(), -1, NaN, 1e300, "now"]) }),
      () => ({ sequence: rng.pick([1, 0, -1, 1.5, 2 ** 53, 2 ** 31, "1"]) }),
      () => ({ time: 1, sequence: 1 }),
      () => hostileOptions(rng),
    ])();
  if (rng.chance(0.3)) o["concurrency"] = randomCount(rng);
  if (rng.chance(0.3)) o["retries"] = randomCount(rng);
  if (rng.chance(0.3)) o["ordered"] = rng.pick([true, false, "yes", 1, null]);
  if (rng.chance(0.3)) o["durable"] = rng.pick([true, false, "false", 0, null]);
  if (rng.chance(0.3)) o["timeoutMs"] = randomDuration(rng);
  if (rng.chance(0.2)) o["maxRedeliveries"] = randomCount(rng);
  if (rng.chance(0.2))
    o["retryBackoff"] = rng.pick<() => unknown>([
      () => ({ initialMs: randomDuration(rng) }),
      () => ({ multiplier: rng.pick([0, 2, NaN, 1e9]) }),
      () => ({ jitter: rng.pick([0, 0.5, 2, -1]) }),
      () => ({ initialMs: 1, maxMs: 2 }),
      () => "a b",
      () => hostileOptions(rng),
    ])();
  if (rng.chance(0.05)) o[randomString(rng, 5) || "unknownKey"] = 1;
  return o;
}

/** An entity event: a plain one the machine knows, or one without a (string) type, or not an object. */
export function randomEntityEvent(rng: Rng, known: readonly string[]): unknown {
  if (rng.chance(0.5)) {
    const event: Record<string, unknown> = { type: rng.pick(known), seed: rng.int(2 ** 31) };
    if (rng.chance(0.2)) event["payload"] = rng.chance(0.7) ? randomJson(rng) : randomNonJson(rng);
    return event;
  }
  return rng.pick<() => unknown>([
    () => ({ type: hostileName(rng) }),
    () => ({ notype: 1 }),
    () => ({ type: "" }),
    () => ({ type: "x".repeat(rng.pick([300, 100_000])) }),
    () => ({ type: "OK", big: 10n }),
    () => ({ type: "OK", fn: () => 1 }),
    () => Object.assign(Object.create(null), { type: "OK" }),
    () => hostileName(rng),
    () => hostileOptions(rng),
    () =>
      new Proxy(
        { type: "OK" },
        {
          get: () => {
            throw new Error("get trap");
          },
        },
      ),
  ])();
}

/** Send/ask options: an id, a timeout, wrong types, or not an object at all. */
export function randomEntityOptions(rng: Rng): unknown {
  if (rng.chance(0.1)) return hostileOptions(rng);
  const o: Record<string, unknown> = {};
  if (rng.chance(0.3)) o["id"] = rng.chance(0.3) ? `ev-${rng.int(20)}` : hostileName(rng);
  if (rng.chance(0.4)) o["timeoutMs"] = rng.chance(0.5) ? rng.pick([1, 5, 3000]) : randomDuration(rng);
  if (rng.chance(0.05)) o["unknownKey"] = 1;
  return o;
}
