/**
 * The cluster chaos test's load and its measurements: submitters that each submit a task, wait
 * for its outcome and submit the next (a steady closed loop, so a stall shows as a gap, not as
 * a backlog), and the kill of one cluster node with the time until work flows again.
 */
import type { PrivateNatsCluster } from "../integration/nats/private-cluster.js";
import { type ChaosRun, GUARD_MS, RESULTS_GUARD_MS } from "./harness.js";

interface Submitted {
  id: string;
  sentAt: number;
  confirmedAt: number;
  completedAt?: number;
}

export class ClusterLoad {
  readonly submitted: Submitted[] = [];
  /** Submits that failed (a PublishError after the transport's retries): not confirmed. */
  readonly refused: Error[] = [];
  completed = 0;
  private stopping = false;
  private loops: Promise<void>[] = [];
  private waiters: Array<() => void> = [];

  constructor(readonly run: ChaosRun) {}

  start(submitters: number): void {
    for (let i = 0; i < submitters; i++) this.loops.push(this.loop(i));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  confirmedIds(): string[] {
    return this.submitted.map((s) => s.id);
  }

  /** From `at`: the first submit sent after it confirmed, and the first such task completed. */
  after(at: number): { confirmMs?: number; roundTripMs?: number } {
    let confirmMs: number | undefined;
    let roundTripMs: number | undefined;
    for (const s of this.submitted) {
      if (s.sentAt < at) continue;
      confirmMs = Math.min(confirmMs ?? Number.POSITIVE_INFINITY, s.confirmedAt - at);
      if (s.completedAt !== undefined) {
        roundTripMs = Math.min(roundTripMs ?? Number.POSITIVE_INFINITY, s.completedAt - at);
      }
    }
    return { confirmMs, roundTripMs };
  }

  /** Resolves once `check` holds (re-checked on every confirmation and outcome), bounded. */
  until(check: (load: this) => boolean, what: string, guardMs = GUARD_MS): Promise<void> {
    if (check(this)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = () => {
        if (!check(this)) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`hang guard (${guardMs} ms): waited for ${what}; ${this.describe()}`));
      }, guardMs);
      this.waiters.push(waiter);
    });
  }

  describe(): string {
    return `${this.submitted.length} confirmed, ${this.completed} completed, ${this.refused.length} refused`;
  }

  private changed(): void {
    for (const w of [...this.waiters]) w();
  }

  private async loop(index: number): Promise<void> {
    for (let n = 0; !this.stopping; n++) {
      const sentAt = Date.now();
      let id: string;
      try {
        id = (
          await this.run.coordinator.submitAsync("work", { n: index * 1_000_000 + n, ms: 10 + (n % 3) * 10 })
        ).id;
      } catch (error) {
        this.refused.push(error as Error);
        this.changed();
        continue;
      }
      const s: Submitted = { id, sentAt, confirmedAt: Date.now() };
      this.submitted.push(s);
      this.changed();
      // A lost outcome is caught by the test's final check; here it only holds this submitter back.
      const outcome = await this.run.coordinator
        .waitFor(id, { timeoutMs: RESULTS_GUARD_MS })
        .catch(() => null);
      if (outcome) {
        s.completedAt = Date.now();
        this.completed++;
        this.changed();
      }
    }
  }
}

export interface KillReport {
  node: string;
  /** When it was killed (epoch ms). */
  at: number;
  /** The client connections it held when killed (their names). */
  clients: string[];
  /** From the kill until a submit sent after it was confirmed. */
  confirmMs?: number;
  /** From the kill until a task submitted after it completed: the failover time. */
  roundTripMs?: number;
  /** New leaders elected after the kill, with when (from the kill). */
  elections: string[];
  /** Per worker process: when it first started a task after the kill (from the kill). */
  firstRuns: string[];
}

/**
 * Kills node `name` with SIGKILL under `load`, then waits until a task submitted after the kill
 * has completed and 50 more tasks did; reports how long that took.
 */
export async function killNode(
  cluster: PrivateNatsCluster,
  name: string,
  load: ClusterLoad,
  elections: Array<{ at: number; what: string; leader: string }>,
): Promise<KillReport> {
  const clients = await cluster.clientsOn(name);
  const at = Date.now();
  await cluster.node(name).server.kill();
  await load.until(
    (l) => l.after(at).roundTripMs !== undefined,
    `a task submitted after killing ${name} completed`,
  );
  const done = load.completed;
  await load.until((l) => l.completed >= done + 50, `50 more tasks completed after killing ${name}`);
  const ledger = load.run.ledger;
  ledger.read();
  const firstRuns = new Map<number, number>();
  for (const l of ledger.lines) {
    if (l.kind === "start" && l.at >= at && !firstRuns.has(l.pid)) firstRuns.set(l.pid, l.at - at);
  }
  return {
    node: name,
    at,
    clients,
    ...load.after(at),
    elections: elections
      .filter((e) => e.at >= at)
      .map((e) => `${e.what} → ${e.leader} after ${e.at - at} ms`),
    firstRuns: [...firstRuns].map(([pid, ms]) => `pid ${pid} after ${ms} ms`),
  };
}

export function describeKill(label: string, k: KillReport): string {
  return (
    `${label}: killed ${k.node} (it held ${k.clients.length} client connection(s): ${k.clients.join(", ") || "none"}); ` +
    `submits confirmed again after ${k.confirmMs} ms, first round trip through the new leaders after ` +
    `${k.roundTripMs} ms (the failover time); elections: ${k.elections.join("; ") || "none seen"}; ` +
    `first task started per worker process: ${k.firstRuns.join(", ")}`
  );
}
