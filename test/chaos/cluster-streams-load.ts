/**
 * The cluster chaos test's event and entity load, beside its tasks (cluster-load.ts):
 *
 * - events: publishers that each publish one durable event, wait for its confirmation and for its
 *   delivery to every group (at most 2 s), then publish the next (a publish that fails is sent
 *   again with the same id, so it is stored once), and two
 *   groups (one with two competing members) recording every delivery, duplicates included;
 * - entities: one sender per id asking a log entity (its state: the numbers it was sent) to append
 *   0, 1, 2, …, one at a time; an ask that fails or times out is sent again with the same event id
 *   (the entity applies an id once), so the model of each id is exactly [0, …, count − 1].
 *
 * Every loop is bounded: an item not confirmed within the hang guard is an error of the run.
 */
import {
  type Coordinator,
  defineEntity,
  EventBus,
  type EventSubscription,
  silentLogger,
  Worker,
} from "fastagentic";
import { NatsTransport } from "../../transports/nats/index.js";
import { logMachine } from "../conformance/entity-machines.js";
import { GUARD_MS } from "./harness.js";

/**
 * The log entity of the load: 4 partitions, so the test can move every consumer's leadership.
 * The default dedupWindow: an event in flight at a kill that comes again hundreds of events later
 * is recognised by its stream sequence (stored with the state), not by a long event-id window.
 */
export const ClusterLedger = defineEntity("cledger", logMachine, {
  partitions: 4,
  inFlight: 64,
});

export const EVENT_GROUPS = ["billing", "shipping"] as const;
const EVENT_PATTERN = "cl.>";
/** A publisher waits this long at most for its event to reach every group before the next. */
const DELIVERY_WAIT_MS = 2000;

/** When each item was first sent and when it reached its end (per group for events). */
interface Item {
  sentAt: number;
  doneAt?: number;
}

/** From `at`: the first item first sent after it that reached its end, in ms after `at`. */
function firstAfter(items: Iterable<Item>, at: number): number | undefined {
  let best: number | undefined;
  for (const i of items) {
    if (i.sentAt < at || i.doneAt === undefined) continue;
    best = Math.min(best ?? Number.POSITIVE_INFINITY, i.doneAt - at);
  }
  return best;
}

/** Retries `attempt` (same identity each time) until it resolves, within the hang guard. */
async function persist<T>(attempt: () => Promise<T>, what: string, onRetry: () => void): Promise<T> {
  const deadline = Date.now() + GUARD_MS;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`hang guard (${GUARD_MS} ms): ${what}: ${error}`);
      onRetry();
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export class EventLoad {
  /** Confirmed event id → when its first publish was sent. */
  readonly confirmed = new Map<string, Item>();
  /** Per group: event id → deliveries (and the first one's time). */
  readonly received = new Map<string, Map<string, { count: number; item: Item }>>();
  /** Publishes that failed and were sent again. */
  resent = 0;
  readonly errors: string[] = [];
  private readonly sentAt = new Map<string, number>();
  private readonly waiting = new Map<string, () => void>();
  private readonly transports: NatsTransport[] = [];
  private readonly subs: EventSubscription[] = [];
  private loops: Promise<void>[] = [];
  private stopping = false;

  constructor(
    private readonly publisher: EventBus,
    private readonly servers: string[],
    private readonly namespace: string,
    private readonly options: Record<string, unknown>,
  ) {}

  /** Joins the groups: "billing" with two members, "shipping" with one, each on its own connection. */
  async join(): Promise<void> {
    const members: Array<[string, string]> = [
      ["billing", "events-billing-1"],
      ["billing", "events-billing-2"],
      ["shipping", "events-shipping-1"],
    ];
    for (const [group, name] of members) {
      const transport = new NatsTransport({
        ...this.options,
        servers: this.servers,
        namespace: this.namespace,
        name,
      });
      this.transports.push(transport);
      const bus = new EventBus({ transport, logger: silentLogger });
      const got = this.received.get(group) ?? new Map<string, { count: number; item: Item }>();
      this.received.set(group, got);
      this.subs.push(
        await bus.subscribe(
          EVENT_PATTERN,
          async (event) => {
            const seen = got.get(event.id);
            if (seen) seen.count++;
            else
              got.set(event.id, {
                count: 1,
                item: { sentAt: this.sentAt.get(event.id) ?? 0, doneAt: Date.now() },
              });
            if (this.everywhere(event.id)) this.waiting.get(event.id)?.();
          },
          { group, concurrency: 8 },
        ),
      );
    }
  }

  start(publishers: number): void {
    for (let i = 0; i < publishers; i++) this.loops.push(this.loop(i));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  /** Ms from `at` to the first delivery, in every group, of an event first published after it. */
  after(at: number): Record<string, number | undefined> {
    const out: Record<string, number | undefined> = {};
    for (const [group, got] of this.received)
      out[group] = firstAfter(
        [...got.values()].map((g) => g.item),
        at,
      );
    return out;
  }

  /** Per group: confirmed events it has not received. */
  missing(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [group, got] of this.received)
      out[group] = [...this.confirmed.keys()].filter((id) => !got.has(id));
    return out;
  }

  describe(): string {
    const groups = [...this.received].map(([g, got]) => {
      const last = Math.max(0, ...[...got.values()].map((v) => v.item.doneAt ?? 0));
      return `${g} received ${got.size} (last ${Date.now() - last} ms ago)`;
    });
    const last = Math.max(0, ...[...this.confirmed.values()].map((v) => v.doneAt ?? 0));
    return `${this.confirmed.size} confirmed (last ${Date.now() - last} ms ago, ${this.resent} resent), ${groups.join(", ")}`;
  }

  duplicates(group: string): number {
    let n = 0;
    for (const g of this.received.get(group)?.values() ?? []) n += g.count - 1;
    return n;
  }

  async close(): Promise<void> {
    await this.stop();
    for (const s of this.subs) await s.close({ timeoutMs: 2000 }).catch(() => {});
    for (const t of this.transports) await t.close().catch(() => {});
  }

  private async loop(index: number): Promise<void> {
    for (let n = 0; !this.stopping; n++) {
      const id = `ev-${index}-${n}`;
      const sentAt = Date.now();
      this.sentAt.set(id, sentAt);
      try {
        await persist(
          () => this.publisher.publish("cl.order", { index, n }, { id }),
          `publish of ${id}`,
          () => this.resent++,
        );
      } catch (error) {
        this.errors.push(String(error));
        return;
      }
      this.confirmed.set(id, { sentAt, doneAt: Date.now() });
      // A closed loop (a stall shows as a gap, not as a backlog): the next event once this one
      // reached every group, or after DELIVERY_WAIT_MS (a lost one is caught by the final check).
      await new Promise<void>((resolve) => {
        const waiting = this.waiting;
        const timer = setTimeout(done, DELIVERY_WAIT_MS);
        function done() {
          clearTimeout(timer);
          waiting.delete(id);
          resolve();
        }
        waiting.set(id, done);
        if (this.everywhere(id)) done();
      });
    }
  }

  private everywhere(id: string): boolean {
    for (const got of this.received.values()) if (!got.has(id)) return false;
    return true;
  }
}

export class EntityLoad {
  /** Per id: how many of its events were applied (answered). */
  readonly applied = new Map<string, number>();
  /** Every applied event: when first sent, when answered. */
  readonly items: Item[] = [];
  /** Asks that failed or timed out and were sent again (same event id). */
  resent = 0;
  /** Why the hosts' partitions were reset by the mailbox (a new consumer leader, heartbeats missed…). */
  readonly resets: string[] = [];
  readonly errors: string[] = [];
  private readonly hosts: Worker[] = [];
  private readonly transports: NatsTransport[] = [];
  private loops: Promise<void>[] = [];
  private stopping = false;

  constructor(
    private readonly client: Coordinator,
    private readonly servers: string[],
    private readonly namespace: string,
    private readonly options: Record<string, unknown>,
  ) {}

  /** Two workers hosting the entity type, each on its own connection. */
  async host(): Promise<void> {
    for (const name of ["entities-1", "entities-2"]) {
      const transport = new NatsTransport({
        ...this.options,
        servers: this.servers,
        namespace: this.namespace,
        name,
      });
      this.transports.push(transport);
      const worker = new Worker({
        transport,
        logger: {
          ...silentLogger,
          warn: (obj: object) => {
            const reason = (obj as { reason?: unknown }).reason;
            if (typeof reason === "string") this.resets.push(`${name}: ${reason}`);
          },
        },
        entities: { failoverMs: 3000 },
        config: { heartbeatIntervalMs: 1000 },
      });
      worker.register(ClusterLedger);
      await worker.start();
      this.hosts.push(worker);
    }
  }

  start(ids: number): void {
    for (let i = 0; i < ids; i++) this.loops.push(this.loop(`e-${i}`));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  after(at: number): number | undefined {
    return firstAfter(this.items, at);
  }

  /** Ids whose stored state is not the model [0, …, applied − 1] (with what was found). */
  async wrong(): Promise<string[]> {
    const wrong: string[] = [];
    for (const [id, count] of this.applied) {
      const snap = await this.client.entity(ClusterLedger, id).get();
      const expected = Array.from({ length: count }, (_, n) => n);
      const log = (snap?.context as { log?: number[] } | undefined)?.log;
      if (JSON.stringify(log) !== JSON.stringify(expected) || snap?.version !== count)
        wrong.push(
          `${id}: expected ${count} events, found ${JSON.stringify(log)} (version ${snap?.version})`,
        );
    }
    return wrong;
  }

  async close(): Promise<void> {
    await this.stop();
    for (const w of this.hosts) await w.stop({ graceful: false }).catch(() => {});
    for (const t of this.transports) await t.close().catch(() => {});
  }

  private async loop(id: string): Promise<void> {
    this.applied.set(id, 0);
    for (let n = 0; !this.stopping; n++) {
      const sentAt = Date.now();
      try {
        await persist(
          () =>
            this.client
              .entity(ClusterLedger, id)
              .ask({ type: "APPEND", n }, { id: `${id}#${n}`, timeoutMs: 8000 }),
          `event ${n} of ${id} applied`,
          () => this.resent++,
        );
      } catch (error) {
        this.errors.push(String(error));
        return;
      }
      this.applied.set(id, n + 1);
      this.items.push({ sentAt, doneAt: Date.now() });
    }
  }
}
