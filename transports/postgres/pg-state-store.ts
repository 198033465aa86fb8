/**
 * The PostgreSQL state store (node-postgres): one row per (scope, key) in one table, with a
 * revision taken from a sequence (so a deleted and re-created key never repeats a revision a stale
 * holder may still hold). put() is one statement: an INSERT … ON CONFLICT DO NOTHING for a new key,
 * an UPDATE … WHERE revision = $expected otherwise; no row back means someone else wrote first.
 * Puts made at once (an entity host writing many ids) leave together, as one statement per batch
 * (pg-put-batcher.ts), each row still its own compare-and-set. The table and sequence are created
 * on connect if missing.
 */
import pg from "pg";
import {
  ConfigError,
  ConnectionError,
  describeThrown,
  PayloadTooLargeError,
  StateError,
  TransportError,
} from "../../src/errors.js";
import { assertStateAddress, type StateStore, type StoredValue } from "../state-store.js";
import type { Bytes } from "../transport.js";
import { PgPutBatcher, type QueuedPut, statementName } from "./pg-put-batcher.js";

export interface PostgresStateStoreOptions {
  /** postgres://user:pass@host:5432/db (default: node-postgres' PG* environment variables). */
  connectionString?: string;
  /** Use this pool instead of opening one (it is not closed by close()). */
  pool?: pg.Pool;
  /** Table name, optionally schema-qualified (default "fa_entity_state"). */
  table?: string;
  /** Connections in the pool it opens (default 10). */
  poolSize?: number;
  /** Largest value (default 16 MiB). */
  maxValueBytes?: number;
  /** Write statements (batches of puts) under way at once (default: half the pool, at least 1). */
  writeConcurrency?: number;
}

interface Statement {
  name: string;
  text: string;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export class PostgresStateStore implements StateStore {
  readonly kind = "postgres";
  readonly maxValueBytes: number;
  readonly table: string;
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly sql: { get: Statement; insert: Statement; update: Statement; delete: Statement };
  private readonly batcher: PgPutBatcher;
  private ready?: Promise<void>;
  private closed = false;

  constructor(options: PostgresStateStoreOptions = {}) {
    const table = options.table ?? "fa_entity_state";
    const parts = table.split(".");
    if (parts.length > 2 || !parts.every((p) => IDENT.test(p))) {
      throw new ConfigError(
        `Invalid PostgreSQL table ${JSON.stringify(table)}: use a name (or schema.name) of letters, digits and "_", ` +
          "starting with a letter or _, at most 63 characters each.",
      );
    }
    this.table = table;
    this.maxValueBytes = options.maxValueBytes ?? 16 * 1024 * 1024;
    this.ownsPool = options.pool === undefined;
    this.pool =
      options.pool ??
      new pg.Pool({
        connectionString: options.connectionString,
        max: options.poolSize ?? 10,
        idleTimeoutMillis: 30_000,
        // Idle connections do not keep the process alive (a finished script exits).
        allowExitOnIdle: true,
      });
    // An idle connection that dies (a server restart) must not crash the process: the next query reconnects.
    this.pool.on("error", () => {});
    const t = quoted(table);
    const seq = quoted(sequenceOf(table));
    const statement = (prefix: string, text: string): Statement => ({
      name: statementName(prefix, text),
      text,
    });
    this.sql = {
      get: statement("fa_get", `SELECT data, revision FROM ${t} WHERE scope = $1 AND key = $2`),
      insert: statement(
        "fa_insert",
        `INSERT INTO ${t} (scope, key, revision, data) VALUES ($1, $2, nextval('${seq}'), $3) ` +
          "ON CONFLICT (scope, key) DO NOTHING RETURNING revision",
      ),
      update: statement(
        "fa_update",
        `UPDATE ${t} SET data = $3, revision = nextval('${seq}'), updated_at = now() ` +
          "WHERE scope = $1 AND key = $2 AND revision = $4 RETURNING revision",
      ),
      delete: statement("fa_delete", `DELETE FROM ${t} WHERE scope = $1 AND key = $2`),
    };
    const concurrency = options.writeConcurrency ?? Math.max(1, Math.floor((options.poolSize ?? 10) / 2));
    this.batcher = new PgPutBatcher(
      t,
      seq,
      (query, values) => this.query(query, values),
      (put) => this.putOne(put),
      concurrency,
    );
  }

  connect(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    this.ready ??= this.createTable().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsPool) await this.pool.end().catch(() => {});
  }

  async get(scope: string, key: string): Promise<StoredValue | null> {
    assertStateAddress(scope, key);
    const rows = await this.query<{ data: Buffer; revision: string }>(this.sql.get, [scope, key]);
    const row = rows[0];
    return row
      ? {
          data: new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength),
          revision: Number(row.revision),
        }
      : null;
  }

  async put(scope: string, key: string, data: Bytes, expected: number | null): Promise<number> {
    assertStateAddress(scope, key);
    if (data.byteLength > this.maxValueBytes) {
      throw new PayloadTooLargeError(data.byteLength, this.maxValueBytes, "state value");
    }
    if (this.closed) throw this.closedError();
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return this.batcher.put(scope, key, bytes, expected);
  }

  /** One put as its own statement: the new revision, or undefined when refused. */
  private async putOne(put: QueuedPut): Promise<number | undefined> {
    const { scope, key, data, expected } = put;
    const rows =
      expected === null
        ? await this.query<{ revision: string }>(this.sql.insert, [scope, key, data])
        : await this.query<{ revision: string }>(this.sql.update, [scope, key, data, expected]);
    const row = rows[0];
    return row ? Number(row.revision) : undefined;
  }

  async delete(scope: string, key: string): Promise<void> {
    assertStateAddress(scope, key);
    await this.query(this.sql.delete, [scope, key]);
  }

  /** Drops the table and its sequence (for tests and teardown). */
  async dropTable(): Promise<void> {
    await this.query(`DROP TABLE IF EXISTS ${quoted(this.table)}`, []);
    await this.query(`DROP SEQUENCE IF EXISTS ${quoted(sequenceOf(this.table))}`, []);
    this.ready = undefined;
  }

  private async createTable(): Promise<void> {
    const t = quoted(this.table);
    const seq = quoted(sequenceOf(this.table));
    const statements = [
      `CREATE SEQUENCE IF NOT EXISTS ${seq}`,
      `CREATE TABLE IF NOT EXISTS ${t} (scope text NOT NULL, key text NOT NULL, revision bigint NOT NULL, ` +
        "data bytea NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (scope, key))",
    ];
    for (const statement of statements) {
      try {
        await this.run(statement, []);
      } catch (error) {
        // Two processes creating it at once: one wins, the other sees a duplicate (23505 / 42P07).
        const code = (error as { code?: string }).code;
        if (code !== "23505" && code !== "42P07") throw error;
      }
    }
  }

  private async query<T extends pg.QueryResultRow>(
    statement: Statement | string,
    values: unknown[],
  ): Promise<T[]> {
    await this.connect();
    return this.run<T>(statement, values);
  }

  private async run<T extends pg.QueryResultRow>(
    statement: Statement | string,
    values: unknown[],
  ): Promise<T[]> {
    if (this.closed) throw this.closedError();
    try {
      return (
        typeof statement === "string"
          ? await this.pool.query<T>(statement, values)
          : await this.pool.query<T>({ ...statement, values })
      ).rows;
    } catch (error) {
      throw translate(error);
    }
  }

  private closedError(): StateError {
    return new StateError("This PostgresStateStore is closed; create a new one.");
  }
}

function translate(error: unknown): Error {
  const code = (error as { code?: string }).code;
  if (
    typeof code === "string" &&
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EPIPE|57P0[1-3]|08\w{3})$/.test(code)
  ) {
    return new ConnectionError(
      `Could not reach PostgreSQL: ${describeThrown(error)}. Check that the server runs and the connection string is right.`,
      { cause: error, retryable: true },
    );
  }
  if (typeof code === "string" && code.startsWith("28")) {
    return new ConnectionError(`PostgreSQL refused the credentials: ${describeThrown(error)}.`, {
      cause: error,
    });
  }
  return new TransportError(`PostgreSQL failed: ${describeThrown(error)}.`, {
    cause: error,
    retryable: true,
  });
}

function quoted(name: string): string {
  return name
    .split(".")
    .map((part) => `"${part}"`)
    .join(".");
}

function sequenceOf(table: string): string {
  return `${table}_rev`;
}
