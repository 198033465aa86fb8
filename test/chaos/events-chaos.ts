/**
 * Chaos cases of the event bus, run on each broker (events.nats.chaos.test.ts,
 * events.amqp.chaos.test.ts): members in processes of their own (test/chaos/event-member.ts)
 * killed with SIGKILL and restarted, the broker restarted under load, a poison event. Every wait
 * is on a ledger file or a process, bounded by a hang guard; figures are printed per case.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EventBus, silentLogger, type Transport, transportFromUrl } from "fastagentic";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { uniqueNamespace } from "../helpers/brokers.js";

export interface EventChaosTarget {
  name: string;
  available(): Promise<boolean>;
  /** The broker URL for the members and the publisher (may be a private server). */
  url(): string;
  /** Adapter options for every transport of the test (e.g. a short AckWait). */
  transportOptions: Record<string, unknown>;
  /** Restarts the broker; resolves once it accepts connections again. */
  restartBroker(): Promise<void>;
  /** Deletes what the namespace created. */
  cleanup(namespace: string): Promise<void>;
}

const MEMBER = fileURLToPath(new URL("./event-member.ts", import.meta.url));
const REPO = fileURLToPath(new URL("../..", import.meta.url));
const GUARD_MS = 90_000;

interface Line {
  id: string;
  key: string;
  n: number;
  count: number;
  pid: number;
}

function readLedger(path: string): Line[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      const [id, key, n, count, pid] = l.split(" ");
      return { id: id as string, key: key as string, n: Number(n), count: Number(count), pid: Number(pid) };
    });
}

async function until(check: () => boolean, what: string, guardMs = GUARD_MS): Promise<void> {
  const deadline = Date.now() + guardMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`hang guard: waited for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function describeEventChaos(target: EventChaosTarget): void {
  describe(`event bus chaos: ${target.name}`, () => {
    let ok = false;
    let dir = "";
    const members: ChildProcess[] = [];
    const namespaces: string[] = [];
    const open: Array<{ bus: EventBus; transport: Transport }> = [];

    beforeAll(async () => {
      ok = await target.available();
      dir = mkdtempSync(join(tmpdir(), "fa-ev-chaos-"));
    });
    afterEach(async () => {
      for (const m of members.splice(0)) if (m.exitCode === null && m.signalCode === null) m.kill("SIGKILL");
      for (const { bus, transport } of open.splice(0)) {
        await bus.close();
        await transport.close();
      }
      for (const ns of namespaces.splice(0)) await target.cleanup(ns).catch(() => {});
    }, 60_000);
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    function ledger(name: string): string {
      const path = join(dir, `${name}-${Date.now()}.ledger`);
      writeFileSync(path, "");
      return path;
    }

    async function member(
      ns: string,
      group: string,
      ledgerPath: string,
      ordered = false,
    ): Promise<ChildProcess> {
      const child = spawn(process.execPath, ["--import", "tsx", MEMBER], {
        cwd: REPO,
        env: {
          ...process.env,
          EV_URL: target.url(),
          EV_NAMESPACE: ns,
          EV_GROUP: group,
          EV_PATTERN: "chaos.>",
          EV_ORDERED: ordered ? "1" : "0",
          EV_LEDGER: ledgerPath,
          EV_TRANSPORT_OPTIONS: JSON.stringify(target.transportOptions),
          FASTAGENTIC_LOG_LEVEL: "error",
        },
        stdio: ["ignore", "ignore", "pipe"],
      });
      members.push(child);
      let err = "";
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`hang guard: member not ready:\n${err}`)), GUARD_MS);
        child.stderr?.on("data", (chunk: Buffer) => {
          err += chunk.toString();
          if (err.includes("ready")) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`member exited early (${code}):\n${err}`));
        });
      });
      return child;
    }

    async function kill(child: ChildProcess): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }

    async function publisher(ns: string): Promise<EventBus> {
      const transport = transportFromUrl(target.url(), { namespace: ns, ...target.transportOptions });
      const bus = new EventBus({ transport, logger: silentLogger });
      open.push({ bus, transport });
      return bus;
    }

    function namespace(): string {
      const ns = uniqueNamespace("evchaos");
      namespaces.push(ns);
      return ns;
    }

    it("loses nothing when a group's only member is SIGKILLed mid-stream and restarted", async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      const path = ledger("kill");
      const bus = await publisher(ns);
      const first = await member(ns, "only", path);
      const total = 400;
      const publishing = (async () => {
        for (let n = 0; n < total; n += 20) {
          await Promise.all(
            Array.from({ length: 20 }, (_, i) =>
              bus.publish("chaos.kill", { n: n + i }, { id: `k-${n + i}` }),
            ),
          );
        }
      })();
      await until(() => readLedger(path).length >= total / 4, "a quarter handled before the kill");
      await kill(first);
      const atKill = new Set(readLedger(path).map((l) => l.id)).size;
      await member(ns, "only", path);
      await publishing;
      await until(
        () => new Set(readLedger(path).map((l) => l.id)).size >= total,
        `all ${total} events handled`,
      );
      const lines = readLedger(path);
      const unique = new Set(lines.map((l) => l.id)).size;
      console.log(
        `[events chaos ${target.name}] kill+restart: published ${total}, handled ${unique} unique, ` +
          `${lines.length - unique} duplicate(s), ${atKill} handled before the kill`,
      );
      expect(atKill).toBeLessThan(total);
      expect(unique).toBe(total);
    }, 180_000);

    it("keeps an ordered group in order per key through a member's death", async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      const path = ledger("ordered");
      const bus = await publisher(ns);
      const a = await member(ns, "ledger", path, true);
      await member(ns, "ledger", path, true);
      const keys = ["k0", "k1", "k2", "k3", "k4", "k5"];
      const perKey = 40;
      const publishing = Promise.all(
        keys.map(async (key) => {
          for (let n = 0; n < perKey; n++)
            await bus.publish("chaos.ordered", { n }, { key, id: `${key}-${n}` });
        }),
      );
      await until(
        () => readLedger(path).length >= (keys.length * perKey) / 4,
        "a quarter handled before the kill",
      );
      await kill(a);
      await member(ns, "ledger", path, true);
      await publishing;
      const total = keys.length * perKey;
      await until(
        () => new Set(readLedger(path).map((l) => l.id)).size >= total,
        `all ${total} events handled`,
      );
      const lines = readLedger(path);
      let backwards = 0;
      for (const key of keys) {
        const ns_ = lines.filter((l) => l.key === key).map((l) => l.n);
        for (let i = 1; i < ns_.length; i++) if ((ns_[i] as number) < (ns_[i - 1] as number)) backwards++;
        expect(new Set(ns_).size).toBe(perKey);
      }
      const unique = new Set(lines.map((l) => l.id)).size;
      console.log(
        `[events chaos ${target.name}] ordered: ${total} events over ${keys.length} keys, ${lines.length - unique} ` +
          `duplicate(s) (a redelivery repeats the event in place), ${backwards} out of order`,
      );
      expect(backwards).toBe(0);
    }, 180_000);

    it("delivers every confirmed event to every group across a broker restart under load", async ({
      skip,
    }) => {
      if (!ok) skip();
      const ns = namespace();
      const billing = ledger("restart-billing");
      const shipping = ledger("restart-shipping");
      const bus = await publisher(ns);
      await member(ns, "billing", billing);
      await member(ns, "shipping", shipping);
      const total = 600;
      const confirmed = new Set<string>();
      const refused: string[] = [];
      const publishing = (async () => {
        for (let n = 0; n < total; n += 10) {
          await Promise.all(
            Array.from({ length: 10 }, async (_, i) => {
              const id = `r-${n + i}`;
              try {
                await bus.publish("chaos.restart", { n: n + i }, { id });
                confirmed.add(id);
              } catch {
                refused.push(id);
              }
            }),
          );
        }
      })();
      await until(() => readLedger(billing).length >= total / 6, "some events handled before the restart");
      await target.restartBroker();
      await publishing;
      const ids = (path: string) => new Set(readLedger(path).map((l) => l.id));
      const reached = (path: string) => [...confirmed].every((id) => ids(path).has(id));
      await until(
        () => reached(billing) && reached(shipping),
        `all ${confirmed.size} confirmed events in both groups`,
      );
      console.log(
        `[events chaos ${target.name}] broker restart: ${confirmed.size} confirmed, ${refused.length} refused ` +
          `(publish failed, not confirmed), billing ${ids(billing).size} / shipping ${ids(shipping).size} unique handled, ` +
          `duplicates ${readLedger(billing).length - ids(billing).size} / ${readLedger(shipping).length - ids(shipping).size}`,
      );
      expect(confirmed.size).toBeGreaterThan(total / 2);
    }, 240_000);

    it("dead-letters a poison event after its retries without blocking the others", async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      const bus = await publisher(ns);
      const handled = new Set<number>();
      let poisonAttempts = 0;
      await bus.subscribe(
        "chaos.poison",
        async (e) => {
          const { n } = e.data as { n: number };
          if (n === 0) {
            poisonAttempts++;
            throw new Error(`poison ${n}`);
          }
          handled.add(n);
        },
        { group: "victim", retries: 3, retryBackoff: { initialMs: 50, maxMs: 200 }, concurrency: 4 },
      );
      await bus.publish("chaos.poison", { n: 0 });
      for (let n = 1; n <= 50; n++) await bus.publish("chaos.poison", { n });
      await until(() => handled.size === 50, "the 50 good events");
      await until(() => poisonAttempts === 4, "4 attempts of the poison event");
      let dead: Awaited<ReturnType<EventBus["deadLetters"]>> = [];
      for (let i = 0; i < 400 && dead.length === 0; i++) {
        dead = await bus.deadLetters("victim", "chaos.poison");
        if (dead.length === 0) await new Promise((r) => setTimeout(r, 50));
      }
      console.log(
        `[events chaos ${target.name}] poison: ${poisonAttempts} attempts, 50/50 others handled, dead letter: ${dead[0]?.reason}`,
      );
      expect(dead).toHaveLength(1);
      expect(dead[0]?.reason).toBe("poison 0");
    }, 120_000);
  });
}
