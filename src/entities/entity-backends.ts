/**
 * Where entities live on a transport: its mailboxes (always the transport's own) and a state
 * store: the one given, else the transport's (memory → in memory, NATS → JetStream KV), else
 * PostgreSQL (RabbitMQ has no store of its own) at FASTAGENTIC_STATE_STORE.
 *
 *   stateStoreFromUrl("memory://")                                   in this process
 *   stateStoreFromUrl("postgres://user@host:5432/db?table=fa_entities")  PostgreSQL (loaded on connect)
 */
import type { EntityMailbox } from "../../transports/entity-mailbox.js";
import { MemoryStateStore } from "../../transports/memory/memory-state-store.js";
import type { StateStore, StoredValue } from "../../transports/state-store.js";
import type { Transport } from "../../transports/transport.js";
import { ConfigError } from "../errors.js";
import { redactUrl } from "../url-redaction.js";

/** Subjects of the entity runtime (fan-out): holder heartbeats, and each client's answers. */
export const entitySubjects = {
  members: "fa-ent.members",
  reply: (clientId: string) => `fa-ent.reply.${clientId}`,
};

export interface EntityBackends {
  mailbox: EntityMailbox;
  store: StateStore;
  /** The store was made here (from FASTAGENTIC_STATE_STORE): whoever resolved it closes it. */
  ownsStore: boolean;
}

/** The mailbox and store for entities on a connected transport. */
export function entityBackends(transport: Transport, store: StateStore | undefined): EntityBackends {
  const mailbox = transport.entityMailbox?.();
  if (mailbox === undefined) {
    throw new ConfigError(
      `The ${transport.kind} transport has no entity mailboxes, so it cannot carry entities. Use the memory, ` +
        "NATS or RabbitMQ transport.",
    );
  }
  const chosen = store ?? transport.stateStore?.();
  if (chosen) return { mailbox, store: chosen, ownsStore: false };
  return { mailbox, store: defaultStateStore(transport), ownsStore: true };
}

function defaultStateStore(transport: Transport): StateStore {
  const url = process.env["FASTAGENTIC_STATE_STORE"];
  if (url) return stateStoreFromUrl(url);
  throw new ConfigError(
    `Entities on the ${transport.kind} transport keep their state in PostgreSQL: set FASTAGENTIC_STATE_STORE ` +
      "(e.g. postgres://user@db:5432/app) or pass stateStore (e.g. stateStoreFromUrl(url)) to the Coordinator, " +
      "Worker or WorkerPool.",
  );
}

/** A state store from a URL: memory:// or postgres(ql)://…[?table=name]. */
export function stateStoreFromUrl(url: string): StateStore {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    // Not chained: the parse error carries the raw input, credentials included.
    throw new ConfigError(
      `"${redactUrl(url)}" is not a state store URL. Use memory:// or postgres://user@host:5432/db.`,
    );
  }
  if (parsed.protocol === "memory:") return new MemoryStateStore();
  if (parsed.protocol === "postgres:" || parsed.protocol === "postgresql:")
    return new LazyPostgresStore(parsed);
  throw new ConfigError(
    `Unsupported state store scheme "${parsed.protocol}" in "${redactUrl(parsed)}". Use memory:// or postgres://. ` +
      "(JetStream KV is the default store of the NATS transport.)",
  );
}

/** PostgreSQL, with `pg` imported on first use. */
class LazyPostgresStore implements StateStore {
  readonly kind = "postgres";
  private inner?: Promise<StateStore>;

  constructor(private readonly url: URL) {}

  get maxValueBytes(): number {
    return 16 * 1024 * 1024;
  }

  private store(): Promise<StateStore> {
    this.inner ??= import("../../transports/postgres/index.js").then(({ postgresStateStoreFromUrl }) =>
      postgresStateStoreFromUrl(this.url),
    );
    return this.inner;
  }

  async connect(): Promise<void> {
    await (await this.store()).connect();
  }

  async close(): Promise<void> {
    if (this.inner) await (await this.inner).close();
  }

  async get(scope: string, key: string): Promise<StoredValue | null> {
    return (await this.store()).get(scope, key);
  }

  async put(scope: string, key: string, data: Uint8Array, expected: number | null): Promise<number> {
    return (await this.store()).put(scope, key, data, expected);
  }

  async delete(scope: string, key: string): Promise<void> {
    return (await this.store()).delete(scope, key);
  }
}
