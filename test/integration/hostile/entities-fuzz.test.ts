/**
 * Fuzz of entities (the part issue 15's fuzz left): seeded hostile entity names and options at
 * defineEntity, hostile targets and ids at coordinator.entity(), events that are not objects or
 * have a missing or hostile `type`, send/ask options of the wrong type; a machine whose guards,
 * assigns and actions throw hostile values, and whose context can hold what cannot be stored
 * (functions, BigInts, cycles); the dashboard's entities routes with hostile path and query values.
 * Every call works or rejects with a FastAgenticError with a string code and a message without
 * stack or password; every HTTP error is `{ error: { code, message } }` with a 4xx; nothing
 * crashes; afterwards the same worker applies a normal event. On memory, NATS (state in JetStream
 * KV) and RabbitMQ (state in PostgreSQL).
 *
 * Reproduce a failure with the seed it prints: FA_FUZZ_SEED=<seed> npx vitest run <this file>.
 */
import { App, Coordinator, defineEntity, type EntitiesOptions, silentLogger } from "fastagentic";
import { afterAll, beforeAll, expect, it } from "vitest";
import { assign, emit, setup } from "xstate";
import { PostgresStateStore } from "../../../transports/postgres/index.js";
import type { Transport } from "../../../transports/transport.js";
import { CliProcess } from "../../chaos/harness.js";
import { AMQP_URL, NATS_URL, POSTGRES_URL, uniqueNamespace } from "../../helpers/brokers.js";
import { hostileName, randomEntityEvent, randomEntityOptions } from "../../helpers/fuzz-bus-values.js";
import { Rng, randomJson, randomNonJson, randomThrowable } from "../../helpers/fuzz-values.js";
import { deleteNamespace as deleteAmqpNamespace } from "../amqp/amqp-helpers.js";
import { deleteEntityObjects } from "../nats/nats-helpers.js";
import { describeEachTransport } from "./each-transport.js";
import {
  brief,
  expectHttpAnswer,
  expectNoLeak,
  expectSettled,
  FUZZ,
  iterate,
  settle,
  shown,
} from "./fuzz-checks.js";

/** What a hostile event's `seed` makes the machine throw or store. */
const hostile = (seed: unknown) => new Rng(typeof seed === "number" ? seed : 0);

const machine = setup({
  types: { context: {} as { n: number; stored?: unknown }, events: {} as { type: string; seed?: number } },
  guards: {
    throws: ({ event }) => {
      throw randomThrowable(hostile(event.seed));
    },
  },
  actions: {
    throws: ({ event }) => {
      throw randomThrowable(hostile(event.seed));
    },
  },
}).createMachine({
  id: "fz",
  initial: "open",
  context: { n: 0 },
  states: {
    open: {
      on: {
        OK: { actions: assign({ n: ({ context }) => context.n + 1 }) },
        GUARD: { guard: "throws", target: "open" },
        ASSIGN: {
          actions: assign({
            n: ({ event }) => {
              throw randomThrowable(hostile(event.seed));
            },
          }),
        },
        ACTION: { actions: "throws" },
        STORE: {
          actions: assign({
            stored: ({ event }) => {
              const rng = hostile(event.seed);
              return rng.chance(0.5) ? randomNonJson(rng) : randomJson(rng);
            },
          }),
        },
        EMIT: { actions: emit(({ event }) => ({ type: "fz.e", data: randomNonJson(hostile(event.seed)) })) },
        CLOSE: "closed",
      },
    },
    closed: {},
  },
});

const Fz = defineEntity("fz", machine, { partitions: 4, askTimeoutMs: 5000 });
const KNOWN = ["OK", "GUARD", "ASSIGN", "ACTION", "STORE", "EMIT", "CLOSE", "NOPE"];
const IDS = ["e1", "e2", "e3", "e4", "e5", "ünï", "a b", "__proto__"];

describeEachTransport("entities fuzz", (t) => {
  let transport: Transport;
  let coordinator: Coordinator;
  let app: App;
  let store: PostgresStateStore | undefined;
  let workerIds: string[] = [];
  const crashes: unknown[] = [];
  const onCrash = (error: unknown) => crashes.push(error);

  beforeAll(async () => {
    if (!t.ready) return;
    process.on("unhandledRejection", onCrash);
    process.on("uncaughtException", onCrash);
    transport = t.make();
    const entities: EntitiesOptions = { failoverMs: 1500 };
    if (t.kind === "amqp") {
      store = new PostgresStateStore({
        connectionString: POSTGRES_URL,
        table: (transport as Transport & { namespace: string }).namespace.replaceAll("-", "_"),
      });
      entities.stateStore = store;
    }
    coordinator = new Coordinator({
      transport,
      config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
      workerConfig: { heartbeatIntervalMs: 500 },
      entities,
      logger: silentLogger,
    });
    coordinator.register(Fz);
    app = new App({ title: "Entities fuzz", appLogger: silentLogger });
    app.onStartup(() => coordinator.start());
    app.onShutdown(() => coordinator.stop());
    app.mountDashboard(coordinator, { entities: [Fz] });
    await app.listen({ port: 0, host: "127.0.0.1" });
    workerIds = coordinator.pool.getWorkers().map((w) => w.id);
    // The first ask waits for the worker to hold the partitions.
    await coordinator.entity(Fz, "warm").ask({ type: "OK" }, { timeoutMs: 30_000 });
  }, 60_000);

  afterAll(async () => {
    process.off("unhandledRejection", onCrash);
    process.off("uncaughtException", onCrash);
    if (!t.ready) return;
    await app.close();
    const namespace = (transport as Transport & { namespace: string }).namespace;
    await transport.close();
    if (t.kind === "nats") await deleteEntityObjects(namespace).catch(() => {});
    if (store) {
      await store.dropTable().catch(() => {});
      await store.close().catch(() => {});
    }
  }, 60_000);

  it("defineEntity and coordinator.entity() with hostile names, machines, options and targets", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    await iterate(t.kind, "define", async (rng, where) => {
      const name = rng.chance(0.2) ? "fz2" : hostileName(rng);
      const options = rng.chance(0.5)
        ? randomEntityOptions(rng)
        : { partitions: rng.pick([0, 1, 4, 1e9, NaN, "4", null]), version: rng.pick([1, 0, 1.5, 10n]) };
      const target = rng.chance(0.8) ? machine : hostileName(rng);
      const r = await settle(where, () =>
        defineEntity(name as string, target as typeof machine, options as never),
      );
      expectSettled(r, `${where} defineEntity(${shown(name)}, …, ${brief(options)})`);
      const ref = await settle(where, () => coordinator.entity(hostileName(rng) as never, "e1"));
      expect(ref.ok, `${where}: coordinator.entity() of a hostile target must be refused`).toBe(false);
      expectSettled(ref, `${where} coordinator.entity(hostile target)`);
    });
  });

  it("send, ask and get with hostile ids, events and options work or reject with a typed error", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    await iterate(t.kind, "api", async (rng, where) => {
      const id = rng.chance(0.6) ? rng.pick(IDS) : hostileName(rng);
      const ref = coordinator.entity(Fz, id as string);
      const event = randomEntityEvent(rng, KNOWN);
      const options = randomEntityOptions(rng);
      const what = rng.int(3);
      const at = `${where} ${["send", "ask", "get"][what]}(${shown(id)}, ${brief(event)}, ${brief(options)})`;
      const r = await settle(at, () =>
        what === 0
          ? ref.send(event as never, options as never)
          : what === 1
            ? ref.ask(event as never, options as never)
            : ref.get(),
      );
      expectSettled(r, at);
    });
  });

  it("the dashboard's entities and event-group routes answer hostile paths and queries in the one error shape", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    await iterate(t.kind, "http", async (rng, where) => {
      const part = () => {
        const v = hostileName(rng);
        try {
          return encodeURIComponent(typeof v === "string" ? v : String(v));
        } catch {
          return rng.pick(["%ED%A0%80", "%FF%FE", "%ZZ", "%", "%00", "..%2F..", "%2e%2e"]);
        }
      };
      const type = rng.chance(0.5) ? "fz" : part();
      const id = rng.chance(0.5) ? encodeURIComponent(rng.pick(IDS)) : part();
      const url = rng.pick([
        `/dashboard/api/entities`,
        `/dashboard/api/entities?${part()}=1`,
        `/dashboard/api/entities/${type}?id=${id}`,
        `/dashboard/api/entities/${type}`,
        `/dashboard/api/entities/${type}?id=${id}&id=${id}`,
        `/dashboard/api/entities/${type}?id=${id}&${part()}=x`,
        `/dashboard/api/entities/${type}/${id}`,
        // The event-groups panel (the dashboard's one route near the event bus): a lookup it lacks.
        `/dashboard/api/providers/${rng.chance(0.5) ? "event-groups" : part()}/lookup?id=${id}`,
        `/dashboard/api/entities/${"t".repeat(rng.pick([64, 65, 5000]))}?id=${"i".repeat(rng.pick([256, 257, 6000]))}`,
      ]);
      const method = rng.pick(["GET", "GET", "GET", "POST", "DELETE", "HEAD"]);
      const at = `${where} ${method} ${url.slice(0, 200)}`;
      const r = await settle(at, () => app.server.inject({ method: method as "GET", url }));
      if (!r.ok) throw new Error(`${at}: inject rejected: ${shown(r.error)}`);
      const answer = r.value as { statusCode: number; body: string; headers: Record<string, unknown> };
      expectHttpAnswer(at, method, answer.statusCode, answer.body, String(answer.headers["content-type"]));
    });
  });

  it("fastagentic worker --handlers <entities> with hostile --state-store and --entity-failover-ms: exit 0, 2, or 1 for an unreachable store", async ({
    skip,
  }) => {
    if (!t.ready || t.kind === "memory") skip();
    const url = t.kind === "nats" ? NATS_URL : AMQP_URL;
    const namespace = uniqueNamespace("fzecli");
    try {
      await iterate(
        t.kind,
        "cli",
        async (rng, where) => {
          const args = ["worker", "--handlers", "test/fixtures/entities/ledger.entities.ts"];
          if (rng.chance(0.7))
            args.push(
              "--state-store",
              rng.pick([
                "memory://",
                POSTGRES_URL,
                "postgres://u:S3cr3tPw@127.0.0.1:1/x",
                "postgres://u:S3cr3tPw@%ZZ/x",
                "redis://127.0.0.1",
                "",
                "nats://127.0.0.1:4222",
                ((name) => (typeof name === "string" ? name.replaceAll("\u0000", "").slice(0, 100) : "42"))(
                  hostileName(rng),
                ),
              ]),
            );
          if (rng.chance(0.6))
            args.push(
              "--entity-failover-ms",
              rng.pick(["10000", "0", "99", "abc", "1e3", "-1", "2147483648", ""]),
            );
          args.push("--transport", url, "--namespace", namespace);
          const at = `${where} fastagentic ${args.map((a) => JSON.stringify(a)).join(" ")}`;
          const p = new CliProcess(args);
          try {
            // A worker that starts serves until SIGTERM, then drains and exits 0.
            const served = await p
              .waitForOutput(/serving/, at, 1, 15_000)
              .then(() => true)
              .catch(() => false);
            if (served) p.signal("SIGTERM");
            const exit = await p.waitExit(at, 20_000);
            await p.waitClosed();
            expectNoLeak(p.stderr + p.stdout, at);
            // 0: served and drained; 2: bad usage or configuration; 1: a typed runtime error (a state
            // store that cannot be reached), printed as one line, never a crash with a stack.
            const shownExit = `${at}: exit ${JSON.stringify(exit)}\n${p.stderr.slice(0, 600)}`;
            expect([0, 1, 2], shownExit).toContain(exit.code);
            if (exit.code !== 0) expect(p.stderr, at).toMatch(/^(fastagentic: |error: )/m);
            if (exit.code === 1) expect(p.stderr, at).toMatch(/Could not reach/);
          } finally {
            await p.destroy();
          }
        },
        4,
      );
    } finally {
      const cleanup = t.make(namespace);
      await cleanup.close().catch(() => {});
      if (t.kind === "nats") await deleteEntityObjects(namespace).catch(() => {});
      if (t.kind === "amqp") await deleteAmqpNamespace(namespace).catch(() => {});
    }
  }, 180_000);

  it("afterwards nothing crashed, the same worker serves, and a normal event is applied", async ({
    skip,
  }) => {
    if (!t.ready) skip();
    const where = `[FA_FUZZ_SEED=${FUZZ.seed}] ${t.kind}`;
    expect(crashes.map(shown), `${where}: unhandled rejections or exceptions`).toEqual([]);
    expect(
      coordinator.pool.getWorkers().map((w) => w.id),
      `${where}: the worker was replaced`,
    ).toEqual(workerIds);
    const before = (await coordinator.entity(Fz, "after").get())?.context as { n: number } | undefined;
    const snap = await coordinator.entity(Fz, "after").ask({ type: "OK" }, { timeoutMs: 10_000 });
    expect((snap.context as { n: number }).n, where).toBe((before?.n ?? 0) + 1);
    const page = await app.server.inject({ method: "GET", url: "/dashboard/api/entities/fz?id=after" });
    expect(page.statusCode, where).toBe(200);
  });
});
