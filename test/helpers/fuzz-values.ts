/**
 * Seeded random values for the fuzz tests: JSON documents, names (types, tags, ids, queues,
 * namespaces), durations and counts, values a handler may throw or return, and HTTP requests. One
 * seed (FA_FUZZ_SEED, printed in every failure) reproduces a whole run.
 */

/** The run's seed: FA_FUZZ_SEED (decimal or 0x…) or a fixed default, so CI is reproducible. */
export function fuzzSeed(): number {
  const given = process.env["FA_FUZZ_SEED"];
  if (given === undefined || given === "") return 0x15_f0_0d;
  const n = Number(given);
  if (!Number.isSafeInteger(n)) throw new Error(`FA_FUZZ_SEED must be an integer, got ${given}`);
  return n >>> 0;
}

/** A small, fast, seeded generator (mulberry32). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A generator of its own for one part of a run (same seed and label: same values). */
  fork(label: string): Rng {
    let h = this.state ^ 0x9e37_79b9;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x0100_0193);
    return new Rng(h >>> 0);
  }

  /** In [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b_79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
}

const CHARS = [
  "a",
  "Z",
  "0",
  "-",
  "_",
  ".",
  ":",
  "/",
  " ",
  ">",
  "*",
  "%",
  "é",
  "😀",
  "\u0000",
  "\n",
  '"',
  "\\",
  "\ud800",
];

/** A short string of awkward characters. */
export function randomString(rng: Rng, maxLength = 12): string {
  let s = "";
  const n = rng.int(maxLength + 1);
  for (let i = 0; i < n; i++) s += rng.pick(CHARS);
  return s;
}

/** A JSON value (objects with `__proto__` keys, deep nesting, extreme numbers, lone surrogates). */
export function randomJson(rng: Rng, depth = 3): unknown {
  const kind = rng.int(depth > 0 ? 9 : 6);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -0, 1, -1, 0.5, 1e308, -1e308, 2 ** 53 + 1, 5e-324, 42]);
    case 3:
      return randomString(rng);
    case 4:
      return rng.chance(0.1) ? "x".repeat(10_000) : rng.pick(["", "echo", "__proto__", "constructor"]);
    case 5:
      return rng.int(1000);
    case 6:
      return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth - 1));
    case 7: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(4); i > 0; i--) {
        Object.defineProperty(o, rng.chance(0.3) ? "__proto__" : randomString(rng, 6), {
          value: randomJson(rng, depth - 1),
          enumerable: true,
          configurable: true,
          writable: true,
        });
      }
      return o;
    }
    default: {
      let nested: unknown = 1;
      for (let i = rng.int(200); i > 0; i--) nested = [nested];
      return nested;
    }
  }
}

/** Task data that is not JSON: functions, symbols, BigInts, cycles, undefined in arrays, Maps. */
export function randomNonJson(rng: Rng): unknown {
  const circular: Record<string, unknown> = { a: 1 };
  circular["self"] = circular;
  return rng.pick<() => unknown>([
    () => 1n,
    () => ({ n: 10n ** 20n }),
    () => Symbol("s"),
    () => () => 1,
    () => circular,
    () => ({ deep: [circular] }),
    () => new Map([[1, 2]]),
    () => ({
      toJSON() {
        throw new Error("toJSON threw");
      },
    }),
    () =>
      new Proxy(
        {},
        {
          ownKeys() {
            throw new Error("ownKeys trap");
          },
        },
      ),
  ])();
}

/** A name as a user might type one, valid or not, including the transports' internal words. */
export function randomName(rng: Rng): unknown {
  return rng.pick<() => unknown>([
    () => randomString(rng),
    () => `t-${rng.int(1e6)}`,
    () => rng.pick(["dead", "events", "ctl", "control", "_INBOX", "$JS", "inbox", "work", "q", "default"]),
    () => rng.pick(["", " ", ".", "..", ">", "*", "a.b", "a b", "a/b", "a%2Fb", "a\u0000b", "é", "😀"]),
    () => "n".repeat(rng.pick([100, 128, 129, 256, 4096, 100_000])),
    () => rng.pick([null, undefined, 0, 42, true, {}, [], ["a"], NaN]),
    () => rng.pick(["q.default.echo.dead", "dead.q.default.echo", "dead"]),
  ])();
}

/** A duration as options might carry one: valid, negative, fractional, huge, NaN, Infinity, not a number. */
export function randomDuration(rng: Rng): unknown {
  return rng.pick([
    undefined,
    0,
    1,
    5,
    50,
    -1,
    0.5,
    NaN,
    Infinity,
    -Infinity,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 40,
    1e300,
    Number.MAX_SAFE_INTEGER + 2,
    "100",
    null,
    true,
    10n,
    {},
  ]);
}

/** A count (retries, workers, concurrency): valid, negative, fractional, huge, NaN, not a number. */
export function randomCount(rng: Rng): unknown {
  return rng.pick([undefined, 0, 1, 2, 3, -1, 1.5, NaN, Infinity, 1e12, 2 ** 31, "2", null, 10n, []]);
}

/** Tags: a list of names, too many of them, or not a list at all. */
export function randomTags(rng: Rng): unknown {
  if (rng.chance(0.2)) return rng.pick([null, "gpu", 1, {}, [[]]]);
  return Array.from({ length: rng.int(9) }, () => (rng.chance(0.7) ? randomName(rng) : "gpu"));
}

/** Submit options: each key absent, valid or hostile; sometimes unknown keys or not an object. */
export function randomSubmitOptions(rng: Rng): unknown {
  if (rng.chance(0.05)) return rng.pick([null, 42, "fast", [], NaN]);
  if (rng.chance(0.03)) return randomNonJson(rng);
  const o: Record<string, unknown> = {};
  if (rng.chance(0.5)) o["priority"] = rng.pick([0, 5, 10, 20, 7, -1, NaN, "high", "HIGH", null, 1e9]);
  if (rng.chance(0.5)) o["timeoutMs"] = randomDuration(rng);
  if (rng.chance(0.4)) o["retries"] = randomCount(rng);
  if (rng.chance(0.3)) o["tags"] = randomTags(rng);
  if (rng.chance(0.3)) o["metadata"] = rng.chance(0.8) ? randomJson(rng, 2) : randomNonJson(rng);
  if (rng.chance(0.3)) o["id"] = randomName(rng);
  if (rng.chance(0.1)) o["headers"] = rng.pick([{ traceparent: "garbage" }, { a: 1 }, "x", null]);
  if (rng.chance(0.05)) o[randomString(rng, 5) || "unknownKey"] = 1;
  return o;
}

const trap = () => {
  throw new Error("trap");
};

/** A Proxy of `target` whose every read (get, has, prototype, keys, descriptors, call) throws. */
export function throwingProxy<T extends object>(target: T = {} as T): T {
  return new Proxy(target, {
    get: trap,
    has: trap,
    getPrototypeOf: trap,
    ownKeys: trap,
    getOwnPropertyDescriptor: trap,
    apply: trap,
  });
}

/** A revoked Proxy: even `Array.isArray` on it throws. */
export function revokedProxy(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

/** What `describeThrown`-style code chokes on, and some values that are merely large or odd. */
export function randomThrowable(rng: Rng): unknown {
  const circular: Record<string, unknown> = {};
  circular["self"] = circular;
  return rng.pick<() => unknown>([
    () => new Error(randomString(rng)),
    () => Object.defineProperty(new Error("x"), "message", { get: trap }),
    () => Object.defineProperty(new Error("x"), "name", { get: trap }),
    () => Object.defineProperty(new Error("x"), "stack", { get: trap }),
    () => Object.defineProperty(new Error("x"), "message", { value: { nested: circular } }),
    () => {
      const e = new Error("cause cycle");
      (e as { cause?: unknown }).cause = e;
      return e;
    },
    () => Object.setPrototypeOf(new Error("no proto"), null),
    () => throwingProxy(new Error("proxied")),
    () => throwingProxy(),
    revokedProxy,
    () => Object.assign(Object.create(null), { a: 1 }),
    () => Object.assign(Object.create(null), { toJSON: trap, toString: trap }),
    () => ({ toString: trap, valueOf: trap }),
    () => Symbol(randomString(rng)),
    () => 10n ** 40n,
    () => "s".repeat(rng.pick([0, 1, 9000, 2 * 1024 * 1024])),
    () => new Error("m".repeat(3 * 1024 * 1024)),
    () => circular,
    () => [circular, 1n],
    () => undefined,
    () => null,
    () => NaN,
    () => () => 1,
    () => randomJson(rng),
    () => Promise.resolve(1),
  ])();
}

/** What a handler may return: JSON, and values no transport can carry (BigInts, cycles, huge). */
export function randomReturn(rng: Rng): unknown {
  return rng.chance(0.5)
    ? randomJson(rng)
    : rng.chance(0.3)
      ? "r".repeat(4 * 1024 * 1024)
      : randomNonJson(rng);
}

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];

/** An HTTP request at an App's surface: known and unknown routes, percent garbage, huge ids, bad bodies. */
export function randomHttpRequest(rng: Rng, taskTypes: readonly string[]): FuzzRequest {
  const id = () =>
    rng.pick<() => string>([
      () => {
        const name = String(randomName(rng));
        try {
          return encodeURIComponent(name);
        } catch {
          return "%ED%A0%80"; // a lone surrogate, as a client would send it
        }
      },
      () => rng.pick(["%FF%FE", "%ZZ", "%", "%00", "..%2F..%2Fetc", "%2e%2e", "a%2Fb", "%C0%AF"]),
      () => "i".repeat(rng.pick([100, 128, 129, 1000, 6000])),
      () => String(rng.int(1e9)),
    ])();
  const url = rng.pick<() => string>([
    () => "/tasks",
    () => `/tasks/${id()}`,
    () => `/tasks/${id()}/${id()}`,
    () => rng.pick(["/workers", "/stats", "/health", "/metrics", "/dead-letters"]),
    () => `/dead-letters/${id()}${rng.chance(0.5) ? "/retry" : ""}`,
    () => `/${id()}`,
    () => rng.pick(["/", "//", "/tasks?x=%ZZ", "/tasks?wait=true&&&", "/tasks/", "/TASKS", "/tasks#x"]),
  ])();
  const headers: Record<string, string> = {};
  const body = randomBody(rng, taskTypes);
  if (body !== undefined || rng.chance(0.2)) {
    const type = rng.pick([
      "application/json",
      "application/json",
      "application/json; charset=utf-16",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "garbage",
    ]);
    if (rng.chance(0.9)) headers["content-type"] = type;
  }
  if (rng.chance(0.2))
    headers["authorization"] = rng.pick(["Bearer x", "Basic %%%", "Bearer ", `Bearer ${"t".repeat(5000)}`]);
  if (rng.chance(0.2)) headers["x-forwarded-for"] = rng.pick(["1.2.3.4", "garbage", ""]);
  if (rng.chance(0.1)) headers["accept-encoding"] = rng.pick(["gzip", "br;q=garbage", "*"]);
  return { method: rng.pick(METHODS), url, headers, ...(body === undefined ? {} : { body }) };
}

/** A request body: a submit (well formed, or with hostile fields), other JSON, or not JSON at all. */
function randomBody(rng: Rng, taskTypes: readonly string[]): string | undefined {
  switch (rng.int(5)) {
    case 0:
      return undefined;
    case 1:
      return rng.pick(["{x", "", "{", "[", "nul", '{"type":', '{"a":1}{"b":2}', "\u0000", "💥"]);
    case 2:
      return JSON.stringify(randomJson(rng));
    default: {
      const submit: Record<string, unknown> = {
        type: rng.chance(0.7) ? rng.pick(taskTypes) : randomName(rng),
      };
      if (rng.chance(0.7)) submit["data"] = randomJson(rng, 2);
      const options = randomSubmitOptions(rng);
      try {
        for (const [key, value] of Object.entries(options ?? {})) if (key !== "headers") submit[key] = value;
      } catch {
        // a hostile Proxy: no options then
      }
      if (rng.chance(0.3)) submit["wait"] = rng.pick([true, true, false, "yes", 1]);
      if (rng.chance(0.3)) submit["waitTimeoutMs"] = randomDuration(rng);
      try {
        return JSON.stringify(submit, (_k, v) => (typeof v === "bigint" ? Number(v) : v));
      } catch {
        return '{"type":"echo","data":"not JSON after all"}';
      }
    }
  }
}
