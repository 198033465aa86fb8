/**
 * Fuzz: seeded random names, JSON and non-JSON values, durations and counts thrown at the API
 * (submit, submitAsync, waitFor, getTask, cancelTask, scale, dead letters, constructors,
 * transportFromUrl), at an App's HTTP surface (inject, and a real socket with percent garbage and
 * bytes that are not HTTP), and handlers that throw or return anything. Every call works or rejects
 * with a FastAgenticError carrying a string code; every HTTP error is `{ error: { code, message } }`
 * with a 4xx (5xx only for a task's own outcome or a broker that cannot take it); no text shows a
 * URL password or a stack; the worker and the process live on. On every transport.
 *
 * Reproduce a failure with the seed it prints: FA_FUZZ_SEED=<seed> npx vitest run <this file>.
 * FA_FUZZ_ITERATIONS scales the iterations of each part (default 150); each part also stops after
 * FA_FUZZ_PART_MS (default 8000).
 */
import {
  App,
  Coordinator,
  silentLogger,
  type TaskHandler,
  TaskPriority,
  transportFromUrl,
  Worker,
} from "fastagentic";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Transport } from "../../../transports/transport.js";
import {
  Rng,
  randomCount,
  randomDuration,
  randomHttpRequest,
  randomJson,
  randomName,
  randomNonJson,
  randomReturn,
  randomString,
  randomSubmitOptions,
  randomTags,
  randomThrowable,
} from "../../helpers/fuzz-values.js";
import { describeEachTransport } from "./each-transport.js";
import {
  brief,
  expectHttpAnswer,
  expectSettled,
  FUZZ,
  iterate,
  parseRawAnswer,
  settle,
  shown,
} from "./fuzz-checks.js";
import { raw } from "./http-helpers.js";

const SEED = FUZZ.seed;
const TYPES = ["echo", "chaos", "chaos-sync"];

/** A handler that throws (or returns) what its data's seed picks. */
function chaos(mode: "async" | "sync"): TaskHandler {
  const pick = (data: unknown) => {
    const seed = (data as { seed?: unknown } | null)?.seed;
    const rng = new Rng(typeof seed === "number" ? seed : 0);
    if (rng.chance(0.7)) throw randomThrowable(rng);
    return randomReturn(rng);
  };
  return mode === "async" ? async (data) => pick(data) : (((data: unknown) => pick(data)) as TaskHandler);
}

const INVALID_COUNTS = [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 1e12, "2", null, 10n, []];

describeEachTransport("fuzz", (t) => {
  let transport: Transport;
  let coordinator: Coordinator;
  let app: App;
  let base: string;
  let workerIds: string[] = [];
  const crashes: unknown[] = [];
  const onCrash = (error: unknown) => crashes.push(error);

  beforeAll(async () => {
    if (!t.ready) return;
    process.on("unhandledRejection", onCrash);
    process.on("uncaughtException", onCrash);
    transport = t.make();
    coordinator = new Coordinator({
      transport,
      config: {
        minWorkers: 1,
        maxWorkers: 1,
        autoScale: false,
        retryBackoff: { initialMs: 1, maxMs: 20 },
        maxQueueSize: 10_000,
      },
      workerConfig: { maxConcurrentTasks: 8 },
      typeDiscoveryMs: 0,
      logger: silentLogger,
    });
    coordinator.handler("echo", async (data) => data);
    coordinator.handler("chaos", chaos("async"));
    coordinator.handler("chaos-sync", chaos("sync"));
    app = new App({ title: "Fuzz", bodyLimit: 64 * 1024, appLogger: silentLogger });
    app.onStartup(() => coordinator.start());
    app.onShutdown(() => coordinator.stop());
    app.mountCoordinator(coordinator, { maxWaitMs: 2000 });
    base = await app.listen({ port: 0, host: "127.0.0.1" });
    workerIds = coordinator.pool.getWorkers().map((w) => w.id);
  });

  afterAll(async () => {
    process.off("unhandledRejection", onCrash);
    process.off("uncaughtException", onCrash);
    if (!t.ready) return;
    await app.close();
    await transport.close();
  });

  it("API calls work or reject with a typed error", async ({ skip }) => {
    if (!t.ready) skip();
    const ids: string[] = [];
    await iterate(t.kind, "api", async (rng, where) => {
      const type = rng.chance(0.6) ? "echo" : randomName(rng);
      const data = rng.chance(0.8) ? randomJson(rng) : randomNonJson(rng);
      switch (rng.int(9)) {
        case 0:
        case 1: {
          const options = randomSubmitOptions(rng);
          const r = await settle(where, () =>
            coordinator.submitAsync(type as string, data, options as never),
          );
          expectSettled(r, `${where} submitAsync(${shown(type)}, …, ${brief(options)})`);
          if (r.ok) ids.push((r.value as { id: string }).id);
          return;
        }
        case 2: {
          // A sane submit of JSON to a served type completes with its data, whatever the data (less
          // its "__proto__" keys, which every transport drops against prototype pollution).
          const json = randomJson(rng);
          const expected = JSON.parse(JSON.stringify(json), (k, v) => (k === "__proto__" ? undefined : v));
          const r = await settle(where, () =>
            coordinator.submit("echo", json, { priority: TaskPriority.HIGH }),
          );
          if (!r.ok) throw new Error(`${where}: echo of ${brief(json)} failed: ${shown(r.error)}`);
          expect(JSON.stringify(r.value), where).toBe(JSON.stringify(expected));
          return;
        }
        case 3: {
          const timeoutMs = randomDuration(rng);
          const id = rng.chance(0.5) && ids.length > 0 ? rng.pick(ids) : randomName(rng);
          const r = await settle(where, () =>
            coordinator.waitFor(id as string, {
              timeoutMs: timeoutMs as number,
              signal: rng.pick([undefined]),
            }),
          );
          expectSettled(r, `${where} waitFor(${shown(id)}, { timeoutMs: ${shown(timeoutMs)} })`, timeoutMs);
          return;
        }
        case 4: {
          const id = rng.chance(0.3) && ids.length > 0 ? rng.pick(ids) : randomName(rng);
          const call = rng.chance(0.5)
            ? () => coordinator.getTask(id as string)
            : () => coordinator.cancelTask(id as string);
          expectSettled(await settle(where, call), `${where} getTask/cancelTask(${shown(id)})`);
          return;
        }
        case 5: {
          const n = rng.pick(INVALID_COUNTS);
          const r = await settle(where, () => coordinator.scale(n as number));
          expect(r.ok, `${where} scale(${shown(n)}) must be refused`).toBe(false);
          expectSettled(r, `${where} scale(${shown(n)})`, n);
          return;
        }
        case 6: {
          const id = randomName(rng);
          const dl = coordinator.deadLetters;
          const call = rng.pick([
            () => dl.get(id as string),
            () => dl.retry(id as string),
            () => dl.delete(id as string),
          ]);
          expectSettled(await settle(where, call), `${where} dead letter ${shown(id)}`);
          return;
        }
        case 7: {
          const url = randomUrl(rng);
          const r = await settle(where, () =>
            transportFromUrl(url, { namespace: randomName(rng) as string }),
          );
          expectSettled(r, `${where} transportFromUrl(${url})`);
          if (r.ok) await settle(where, () => (r.value as Transport).close());
          return;
        }
        default: {
          const d = randomDuration(rng);
          const what = rng.int(3);
          const r = await settle(where, () =>
            what === 0
              ? new Coordinator({
                  transport,
                  config: {
                    healthCheckIntervalMs: d,
                    autoScaleIntervalMs: randomDuration(rng),
                    maxQueueSize: randomCount(rng),
                  } as never,
                  logger: silentLogger,
                })
              : what === 1
                ? new Worker({
                    transport,
                    config: {
                      heartbeatIntervalMs: d,
                      maxConcurrentTasks: randomCount(rng),
                      tags: randomTags(rng),
                    } as never,
                    logger: silentLogger,
                  })
                : new Coordinator({
                    transport,
                    config: { queueName: randomName(rng) as string },
                    logger: silentLogger,
                  }),
          );
          expectSettled(r, `${where} constructor ${what} with ${shown(d)}`, what === 2 ? undefined : d);
        }
      }
    });
  });

  it("handlers that throw or return anything fail their task with a typed error", async ({ skip }) => {
    if (!t.ready) skip();
    await iterate(t.kind, "handlers", async (rng, where) => {
      const seed = rng.int(2 ** 31);
      const type = rng.pick(["chaos", "chaos-sync"]);
      const r = await settle(where, () => coordinator.submit(type, { seed }, { retries: rng.pick([0, 1]) }));
      expectSettled(r, `${where} ${type} { seed: ${seed} }`);
    });
  });

  it("HTTP requests (inject) get an answer in the one error shape", async ({ skip }) => {
    if (!t.ready) skip();
    await iterate(t.kind, "inject", async (rng, where) => {
      const request = randomHttpRequest(rng, TYPES);
      const at = `${where} ${request.method} ${request.url.slice(0, 120)} ${request.body?.slice(0, 200) ?? ""}`;
      const r = await settle(at, () =>
        app.server.inject({
          method: request.method as "GET",
          url: request.url,
          headers: request.headers,
          ...(request.body === undefined ? {} : { payload: request.body }),
        }),
      );
      if (!r.ok) throw new Error(`${at}: inject rejected: ${shown(r.error)}`);
      const answer = r.value as { statusCode: number; body: string; headers: Record<string, unknown> };
      expectHttpAnswer(
        at,
        request.method,
        answer.statusCode,
        answer.body,
        String(answer.headers["content-type"]),
      );
    });
  });

  it("HTTP requests over a real socket, and bytes that are not HTTP, get an answer in the one error shape", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    await iterate(t.kind, "socket", async (rng, where) => {
      const request = randomHttpRequest(rng, TYPES);
      if (rng.chance(0.5)) {
        const at = `${where} raw ${request.method} ${request.url.slice(0, 120)}`;
        const bytes = rawRequest(rng, request);
        const answer = await settle(at, () => raw(base, bytes));
        if (!answer.ok) throw new Error(`${at}: ${shown(answer.error)}`);
        const { status, headers, body } = parseRawAnswer(answer.value as string);
        if (Number.isNaN(status)) throw new Error(`${at}: no HTTP status in ${shown(answer.value)}`);
        expectHttpAnswer(at, request.method, status, body, /content-type: *([^\r\n]*)/i.exec(headers)?.[1]);
        return;
      }
      const at = `${where} fetch ${request.method} ${request.url.slice(0, 120)}`;
      const hasBody = request.body !== undefined && request.method !== "GET" && request.method !== "HEAD";
      const r = await settle(at, () =>
        fetch(`${base}${request.url}`, {
          method: request.method,
          headers: request.headers,
          ...(hasBody ? { body: request.body } : {}),
        }).then(async (response) => ({ response, text: await response.text() })),
      );
      if (!r.ok) throw new Error(`${at}: ${shown(r.error)} ${shown((r.error as Error).cause)}`);
      const { response, text } = r.value as { response: Response; text: string };
      expectHttpAnswer(at, request.method, response.status, text, response.headers.get("content-type") ?? "");
    });
  });

  it("afterwards the worker and the process live on, and a normal task completes", async ({ skip }) => {
    if (!t.ready) skip();
    const where = `[FA_FUZZ_SEED=${SEED}] ${t.kind}`;
    expect(crashes.map(shown), `${where}: unhandled rejections or exceptions`).toEqual([]);
    expect(coordinator.state, where).toBe("running");
    expect(
      coordinator.pool.getWorkers().map((w) => w.id),
      `${where}: the worker was replaced`,
    ).toEqual(workerIds);
    expect(coordinator.getStats().workers.restarts, where).toBe(0);
    expect(await coordinator.submit("echo", { after: "fuzz" }), where).toEqual({ after: "fuzz" });
    const health = await fetch(`${base}/health`);
    expect(health.status, where).toBe(200);
  });
});

/** A transport URL with a password in it, broken in one of many ways. */
function randomUrl(rng: Rng): string {
  const scheme = rng.pick(["nats", "amqp", "amqps", "memory", "redis", "", "nats+tls"]);
  const host = rng.pick(["127.0.0.1", "[::1", "%ZZ", "", "h ost", "127.0.0.1,127.0.0.2"]);
  const port = rng.pick([":notaport", ":99999", ":-1", "", ":4222"]);
  const path = rng.pick(["/%ZZ", "", "/vh", "/%", "/a/b"]);
  const query = rng.pick([
    "?namespace=>",
    "?namespace=a%20b",
    `?${randomString(rng, 4)}=1`,
    "?heartbeat=NaN",
    "",
  ]);
  return `${scheme}://u:S3cr3tPw${rng.pick(["", "%ZZ", "@x"])}@${host}${port}${path}${query}`;
}

/** A request as bytes: percent garbage left as sent, odd methods and versions, or not HTTP at all. */
function rawRequest(rng: Rng, request: { method: string; url: string; body?: string }): string {
  const body = request.body ?? "";
  const chunked = rng.chance(0.2);
  const line = rng.pick([
    `${request.method} ${request.url} HTTP/1.1`,
    `${rng.pick(["FOO", "GET", "POST"])} /tasks/${rng.pick(["%FF%FE", "%", "%ZZ", "a b", "\u00e9"])} HTTP/1.1`,
    `GET ${request.url} HTTP/1.0`,
    `GET ${request.url} HTTP/9.9`,
    "NOT HTTP",
    `GET /${"x".repeat(rng.pick([100, 20_000]))} HTTP/1.1`,
  ]);
  const headers = [
    "Host: 127.0.0.1",
    "Connection: close",
    rng.pick(["Content-Type: application/json", "Content-Type: text/plain", "Content-Type: ;;;", ""]),
    chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${Buffer.byteLength(body)}`,
    rng.chance(0.1) ? "Bad Header Line" : "",
  ].filter((h) => h !== "");
  const size = Buffer.byteLength(body);
  const payload = chunked ? `${size > 0 ? `${size.toString(16)}\r\n${body}\r\n` : ""}0\r\n\r\n` : body;
  return `${line}\r\n${headers.join("\r\n")}\r\n\r\n${payload}`;
}
