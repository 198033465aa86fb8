/**
 * Entities over a broker, for the entities section of `npm run bench`: the worker process runs a
 * Worker holding a counter entity type (state in JetStream KV on NATS, in PostgreSQL on RabbitMQ);
 * the producer is a Coordinator with no workers of its own. As a round-trip path, `call(x)` is an
 * `ask` to one of `ids` entities and returns `x * 2` from the snapshot it answers.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import {
  Coordinator,
  defineEntity,
  type EntitiesOptions,
  type EntityRef,
  silentLogger,
  stateStoreFromUrl,
  type Transport,
  transportFromUrl,
  Worker,
} from "fastagentic";
import { PostgresStateStore } from "fastagentic/transports/postgres";
import { assign, setup } from "xstate";
import { type BenchPath, type PathSpec, within } from "./bench-path.js";

export type EntityBroker = "nats" | "amqp";

export const BENCH_ENTITY_PARTITIONS = 16;
/** Ids the round-trip `call(x)` spreads its asks over. */
const CALL_IDS = 1000;

export type CounterEvent = { type: "ADD"; x: number };

/** One transition, state kept: each ADD counts and remembers its x. */
export const counterMachine = setup({
  types: { context: {} as { n: number; last: number }, events: {} as CounterEvent },
}).createMachine({
  id: "counter",
  initial: "on",
  context: { n: 0, last: -1 },
  states: {
    on: {
      on: {
        ADD: { actions: assign({ n: ({ context }) => context.n + 1, last: ({ event }) => event.x }) },
      },
    },
  },
});

export const Counter = defineEntity("benchcounter", counterMachine, {
  partitions: BENCH_ENTITY_PARTITIONS,
  maxActive: 200_000,
});

export type CounterRef = EntityRef<CounterEvent, { n: number; last: number }, "on">;

function urlOf(broker: EntityBroker, spec: PathSpec): string {
  return broker === "nats" ? spec.natsUrl : spec.amqpUrl;
}

/** PostgreSQL for RabbitMQ (a table per run, dropped at the end), JetStream KV on NATS (the transport's). */
export function postgresUrl(): string {
  return process.env["BENCH_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
}

export function stateTable(spec: PathSpec): string {
  return `bench_${spec.ns.replace(/[^a-zA-Z0-9]/g, "_")}`.toLowerCase();
}

function entitiesOptions(broker: EntityBroker, spec: PathSpec): EntitiesOptions {
  if (broker === "nats") return {};
  return { stateStore: stateStoreFromUrl(`${postgresUrl()}?table=${stateTable(spec)}`) };
}

export interface EntityProducer {
  coordinator: Coordinator;
  transport: Transport;
  ref(id: string): CounterRef;
  close(): Promise<void>;
}

/** The producer end: a pure client Coordinator (its transport deletes what the run created on close). */
export async function entityProducer(broker: EntityBroker, spec: PathSpec): Promise<EntityProducer> {
  const cleanup = broker === "nats" ? { streamsOnClose: "delete" } : { deleteOnClose: true };
  const transport = transportFromUrl(urlOf(broker, spec), { namespace: spec.ns, ...cleanup });
  const entities = entitiesOptions(broker, spec);
  const coordinator = new Coordinator({
    transport,
    config: { minWorkers: 0, autoScale: false },
    logger: silentLogger,
    entities,
  });
  await coordinator.start();
  return {
    coordinator,
    transport,
    ref: (id) => coordinator.entity(Counter, id) as unknown as CounterRef,
    async close() {
      await within(coordinator.stop({ graceful: false }), 10_000, "stopping the coordinator").catch(() => {});
      await within(
        transport.entityMailbox?.().remove(Counter.name, Counter.partitions) ?? Promise.resolve(),
        10_000,
        "removing the mailboxes",
      ).catch(() => {});
      await within(transport.close(), 10_000, "closing the transport").catch(() => {});
      await entities.stateStore?.close().catch(() => {});
      if (broker === "amqp") await dropStateTable(spec);
      else await within(dropNatsEntityStreams(spec), 15_000, "deleting the entity streams").catch(() => {});
    },
  };
}

/** Deletes the run's entity streams and KV buckets on NATS (the mailbox, the leases, the state). */
async function dropNatsEntityStreams(spec: PathSpec): Promise<void> {
  const nc = await natsConnect({ servers: spec.natsUrl.replace(/^nats:\/\//, "") });
  try {
    const jsm = await jetstreamManager(nc);
    const ours = (name: string) =>
      name.startsWith(`${spec.ns}~ent~`) ||
      name === `KV_fa_state_${spec.ns}` ||
      name === `KV_fa_lease_${spec.ns}`;
    const names: string[] = [];
    for await (const name of jsm.streams.names()) if (ours(name)) names.push(name);
    for (const name of names) await jsm.streams.delete(name).catch(() => {});
  } finally {
    await nc.close();
  }
}

/** Drops the run's PostgreSQL table (RabbitMQ's state store). */
async function dropStateTable(spec: PathSpec): Promise<void> {
  const store = new PostgresStateStore({ connectionString: postgresUrl(), table: stateTable(spec) });
  await within(store.dropTable(), 10_000, "dropping the state table").catch(() => {});
  await store.close().catch(() => {});
}

export function entityBrokerPath(broker: EntityBroker): BenchPath {
  return {
    id: broker === "nats" ? "ent-nats" : "ent-amqp",
    label:
      broker === "nats" ? "entity ask on NATS (state in KV)" : "entity ask on RabbitMQ (state in PostgreSQL)",
    kind: "fastagentic",
    broker,
    baseline: broker === "nats" ? "raw-jetstream" : "raw-amqp",
    extra: true,

    async probe(spec) {
      const transport = transportFromUrl(urlOf(broker, spec), { namespace: spec.ns, connectTimeoutMs: 4000 });
      try {
        await within(transport.connect(), 6000, `connecting to ${broker}`);
      } finally {
        await within(transport.close(), 5000, "closing the probe").catch(() => {});
      }
      if (broker === "amqp") {
        const store = stateStoreFromUrl(postgresUrl());
        try {
          await within(store.connect(), 6000, "connecting to PostgreSQL");
        } finally {
          await store.close().catch(() => {});
        }
      }
    },

    async worker(spec) {
      const transport = transportFromUrl(urlOf(broker, spec), { namespace: spec.ns });
      const entities = entitiesOptions(broker, spec);
      const worker = new Worker({
        transport,
        logger: silentLogger,
        entities: { failoverMs: 5000, ...entities },
      });
      worker.register(Counter);
      await worker.start();
      return {
        started: () => worker.entityStats[0]?.applied ?? 0,
        async close() {
          await within(worker.stop({ graceful: false }), 10_000, "stopping the worker").catch(() => {});
          await within(transport.close(), 10_000, "closing the transport").catch(() => {});
          await entities.stateStore?.close().catch(() => {});
        },
      };
    },

    async client(spec) {
      const producer = await entityProducer(broker, spec);
      return {
        async call(x) {
          const snap = await producer.ref(`c-${x % CALL_IDS}`).ask({ type: "ADD", x });
          if (snap.context.last !== x)
            throw new Error(`the ask of ${x} answered the snapshot of ${snap.context.last}`);
          return x * 2;
        },
        close: () => producer.close(),
      };
    },
  };
}
