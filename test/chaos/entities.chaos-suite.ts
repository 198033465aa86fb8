/**
 * Entity chaos, one suite per broker: 1,000 ids × 20 events each, sent in rounds by one client,
 * held by worker processes started from the CLI (test/fixtures/entities/ledger.entities.ts: each
 * entity's state is the list of numbers it was sent). Mid-run one worker is SIGKILLed (a fresh
 * one started in its place) and the other SIGSTOPped for longer than the failover time, then
 * resumed; or the broker restarts. At the end every id's state must be exactly [0, 1, …, 19]: no
 * event lost, none applied twice, none out of order. The woken process's writes are counted as it
 * reports them refused by compare-and-set. Waits are on states and output, bounded by hang guards.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Coordinator } from "../../src/coordinator.js";
import { Ledger } from "../fixtures/entities/ledger.entities.js";
import { uniqueNamespace } from "../helpers/brokers.js";
import { CliProcess, GUARD_MS } from "./harness.js";

export const IDS = 1000;
export const EVENTS = 20;
const FAILOVER_MS = 3000;
const CASE_MS = 600_000;
const REFUSED = /entity write refused by compare-and-set/g;

export interface EntityChaosTarget {
  name: "NATS" | "RabbitMQ";
  /** Worker CLI arguments for a namespace on a broker (transport, namespace, options, state store). */
  workerArgs(namespace: string, url: string): string[];
  /** A client coordinator (minWorkers 0) in the namespace, and how to close it. */
  client(namespace: string, url: string): Promise<{ coordinator: Coordinator; close(): Promise<void> }>;
  /** Deletes what the namespace left on the broker and in the store. */
  cleanup(namespace: string, url: string): Promise<void>;
}

export interface EntityChaosSuite {
  target: EntityChaosTarget;
  url: string;
  available(): Promise<boolean>;
  lock?(): Promise<() => Promise<void>>;
  restore?(): Promise<void>;
  /** Stops and starts the broker (on `url` as it gives it); resolves with the URL to use. */
  restart: {
    title: string;
    broker(): Promise<{
      url: string;
      stop(): Promise<void>;
      start(): Promise<void>;
      destroy(): Promise<void>;
    }>;
  };
}

/** One run: a namespace, its worker processes and its client; everything ended and deleted after. */
class EntityRun {
  readonly namespace = uniqueNamespace("ech");
  readonly workers: CliProcess[] = [];
  client!: { coordinator: Coordinator; close(): Promise<void> };
  readonly ids = Array.from({ length: IDS }, (_, i) => `acct-${i}`);

  constructor(
    private readonly target: EntityChaosTarget,
    readonly url: string,
  ) {}

  async start(workers: number): Promise<void> {
    for (let i = 0; i < workers; i++) await this.worker();
    this.client = await this.target.client(this.namespace, this.url);
  }

  async worker(): Promise<CliProcess> {
    const p = new CliProcess(
      [
        "worker",
        ...this.target.workerArgs(this.namespace, this.url),
        "--handlers",
        "test/fixtures/entities/ledger.entities.ts",
        "--min-workers",
        "1",
        "--max-workers",
        "1",
        "--entity-failover-ms",
        String(FAILOVER_MS),
      ],
      { ENTITY_PARTITIONS: "16" },
    );
    this.workers.push(p);
    await p.waitForOutput(/serving entity ledger/, "a worker holding entities");
    return p;
  }

  /**
   * Sends round n (event n to every id), 250 sends at a time. Each event has an id of its own
   * (`<id>#<n>`), so a send that failed (the broker was away) is sent again safely: the entity
   * applies an id once.
   */
  async round(n: number): Promise<void> {
    const c = this.client.coordinator;
    const send = async (id: string) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await c.entity(Ledger, id).send({ type: "APPEND", n }, { id: `${id}#${n}` });
          return;
        } catch (error) {
          if (attempt >= 30) throw error;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    };
    for (let i = 0; i < this.ids.length; i += 250) await Promise.all(this.ids.slice(i, i + 250).map(send));
  }

  /** Resolves once every id in `ids` has at least `version` events applied (polling the store). */
  async applied(version: number, ids = this.ids, guardMs = GUARD_MS * 3): Promise<void> {
    const deadline = Date.now() + guardMs;
    let behind = ids;
    while (behind.length > 0) {
      const states = await Promise.all(behind.map((id) => this.client.coordinator.entity(Ledger, id).get()));
      behind = behind.filter((_, i) => (states[i]?.version ?? 0) < version);
      if (behind.length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(
          `hang guard (${guardMs} ms): ${behind.length} id(s) below version ${version}, e.g. ${behind[0]}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Every id's final log; the ids whose log is not exactly 0..EVENTS-1. */
  async wrong(): Promise<string[]> {
    const expected = JSON.stringify(Array.from({ length: EVENTS }, (_, i) => i));
    const wrong: string[] = [];
    for (let i = 0; i < this.ids.length; i += 200) {
      const batch = this.ids.slice(i, i + 200);
      const states = await Promise.all(batch.map((id) => this.client.coordinator.entity(Ledger, id).get()));
      states.forEach((s, k) => {
        if (JSON.stringify(s?.context.log) !== expected)
          wrong.push(`${batch[k]}: ${JSON.stringify(s?.context.log)}`);
      });
    }
    return wrong;
  }

  async end(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.destroy()));
    await this.client?.close().catch(() => {});
    await this.target.cleanup(this.namespace, this.url);
  }
}

const sample = (ids: string[]) => ids.filter((_, i) => i % 20 === 0);

export function describeEntityChaos(suite: EntityChaosSuite): void {
  const { target } = suite;
  describe(`entity chaos on ${target.name} (${IDS} ids × ${EVENTS} events, worker processes from the CLI)`, () => {
    let ok = false;
    let release: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      ok = await suite.available();
      if (ok && suite.lock) release = await suite.lock();
    }, 1_900_000);

    afterAll(async () => {
      try {
        if (ok) await suite.restore?.();
      } finally {
        await release?.();
      }
    }, 120_000);

    it(
      "SIGKILL one holder, SIGSTOP the other past the failover time: every id ends at [0..19], the woken one's writes refused",
      async ({ skip }) => {
        if (!ok) skip();
        const run = new EntityRun(target, suite.url);
        try {
          await run.start(2);
          const [a, b] = run.workers as [CliProcess, CliProcess];
          for (let n = 0; n < 5; n++) await run.round(n);
          await run.applied(3, sample(run.ids));
          a.signal("SIGKILL");
          await run.worker(); // a supervisor would start one in its place
          for (let n = 5; n < 10; n++) await run.round(n);
          await run.applied(8, sample(run.ids));
          // Freeze B with events in its hands: a round under way.
          const burst = run.round(10);
          b.signal("SIGSTOP");
          await burst;
          const frozenAt = Date.now();
          // Past the failover time: the new worker took B's partitions and applied round 10 everywhere.
          await run.applied(11);
          const frozenMs = Date.now() - frozenAt;
          const before = b.stderr.length;
          b.signal("SIGCONT");
          for (let n = 11; n < EVENTS; n++) await run.round(n);
          await run.applied(EVENTS);
          const refusedAfterWake = (b.stderr.slice(before).match(REFUSED) ?? []).length;
          const refusedAll = run.workers.map((w) => (w.stderr.match(REFUSED) ?? []).length);
          console.log(
            `[entity chaos ${target.name}] B frozen ${frozenMs} ms (failover ${FAILOVER_MS} ms); writes refused by ` +
              `compare-and-set: ${refusedAll.join(" / ")} (A / B / C), of them B after waking: ${refusedAfterWake}`,
          );
          expect(await run.wrong()).toEqual([]);
          // B woke up with events of round 10 in hand that C had applied since: its writes were refused.
          expect(refusedAfterWake).toBeGreaterThan(0);
        } finally {
          await run.end();
        }
      },
      CASE_MS,
    );

    it(
      suite.restart.title,
      async ({ skip }) => {
        if (!ok) skip();
        const broker = await suite.restart.broker();
        const run = new EntityRun(target, broker.url);
        try {
          await run.start(2);
          for (let n = 0; n < 8; n++) await run.round(n);
          await run.applied(4, sample(run.ids));
          await broker.stop();
          await broker.start();
          for (let n = 8; n < EVENTS; n++) await run.round(n);
          await run.applied(EVENTS);
          const wrong = await run.wrong();
          if (wrong.length > 0)
            console.log(
              `[entity chaos ${target.name}] wrong after the restart: ${wrong.slice(0, 5).join("; ")}`,
            );
          expect(wrong).toEqual([]);
        } finally {
          await run.end();
          await broker.destroy();
        }
      },
      CASE_MS,
    );
  });
}
