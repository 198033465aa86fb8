/**
 * Compare-and-set writes to PostgreSQL, several keys per statement. Puts made while the store is
 * busy (or in the same turn of the event loop) wait in a queue and leave together as one
 * statement over unnest() arrays: an UPDATE … WHERE revision = expected for the keys that exist,
 * an INSERT … ON CONFLICT DO NOTHING for the new ones, each row taking its own revision from the
 * sequence. Each row is its own compare-and-set, exactly as a single put: a row whose revision
 * moved on is left as it is and its put is refused (StateConflictError); the other rows of the
 * statement are written. An entity host writing 500 ids at once thus pays a few round trips, not
 * 500 (see ARCHITECTURE.md, "Entities", for the figures).
 */
import { createHash } from "node:crypto";
import type pg from "pg";
import { StateConflictError } from "../../src/errors.js";

export interface QueuedPut {
  scope: string;
  key: string;
  data: Buffer;
  expected: number | null;
  resolve(revision: number): void;
  reject(error: unknown): void;
}

export type RunQuery = <T extends pg.QueryResultRow>(
  query: { name: string; text: string },
  values: unknown[],
) => Promise<T[]>;

/** A put alone: the new revision, or undefined when refused. */
export type PutOne = (put: QueuedPut) => Promise<number | undefined>;

/** Rows per statement at most. */
const MAX_ROWS = 256;

/**
 * One statement for a batch of distinct (scope, key): returns `ord` (the write's index) and its new
 * revision for each row written; a write with no row back was refused.
 */
export function batchPutSql(table: string, sequence: string): string {
  return (
    "WITH w AS (SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::bytea[], $5::bigint[]) " +
    "AS w(ord, scope, key, data, expected)), " +
    `upd AS (UPDATE ${table} AS t SET data = w.data, revision = nextval('${sequence}'), updated_at = now() ` +
    "FROM w WHERE w.expected IS NOT NULL AND t.scope = w.scope AND t.key = w.key AND t.revision = w.expected " +
    "RETURNING w.ord, t.revision), " +
    `ins AS (INSERT INTO ${table} (scope, key, revision, data) ` +
    `SELECT w.scope, w.key, nextval('${sequence}'), w.data FROM w WHERE w.expected IS NULL ORDER BY w.ord ` +
    "ON CONFLICT (scope, key) DO NOTHING RETURNING scope, key, revision) " +
    "SELECT ord, revision FROM upd UNION ALL " +
    "SELECT w.ord, ins.revision FROM ins JOIN w ON w.scope = ins.scope AND w.key = ins.key AND w.expected IS NULL"
  );
}

/**
 * Queues puts and sends them in batches, at most `concurrency` statements at once (a batch of one
 * as the single-row statement). A put waits only for the statement it is in; a statement holds
 * each key once (a second put of a queued key goes in another statement, as two concurrent puts
 * would: at most one of them can win).
 */
export class PgPutBatcher {
  private queue: QueuedPut[] = [];
  private running = 0;
  private scheduled = false;

  private readonly query: { name: string; text: string };

  constructor(
    table: string,
    sequence: string,
    private readonly run: RunQuery,
    private readonly putOne: PutOne,
    private readonly concurrency: number,
  ) {
    const text = batchPutSql(table, sequence);
    this.query = { name: statementName("fa_put_many", text), text };
  }

  put(scope: string, key: string, data: Buffer, expected: number | null): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ scope, key, data, expected, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running >= this.concurrency || this.queue.length === 0) return;
    this.scheduled = true;
    // Puts made in this turn of the event loop leave together.
    queueMicrotask(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.running < this.concurrency && this.queue.length > 0) {
      const batch = this.take();
      this.running++;
      void this.send(batch).finally(() => {
        this.running--;
        this.schedule();
      });
    }
  }

  /** Up to MAX_ROWS queued puts with distinct keys, oldest first; the others stay queued in order. */
  private take(): QueuedPut[] {
    const batch: QueuedPut[] = [];
    const rest: QueuedPut[] = [];
    const seen = new Set<string>();
    for (const put of this.queue) {
      const id = `${put.scope}\u0000${put.key}`;
      if (batch.length >= MAX_ROWS || seen.has(id)) rest.push(put);
      else {
        seen.add(id);
        batch.push(put);
      }
    }
    this.queue = rest;
    return batch;
  }

  private async send(batch: QueuedPut[]): Promise<void> {
    if (batch.length === 1) {
      const put = batch[0] as QueuedPut;
      try {
        const revision = await this.putOne(put);
        if (revision === undefined) put.reject(new StateConflictError(put.scope, put.key, put.expected));
        else put.resolve(revision);
      } catch (error) {
        put.reject(error);
      }
      return;
    }
    let rows: Array<{ ord: number; revision: string }>;
    try {
      rows = await this.run<{ ord: number; revision: string }>(this.query, [
        batch.map((_, i) => i),
        batch.map((p) => p.scope),
        batch.map((p) => p.key),
        batch.map((p) => p.data),
        batch.map((p) => (p.expected === null ? null : String(p.expected))),
      ]);
    } catch (error) {
      for (const put of batch) put.reject(error);
      return;
    }
    const won = new Map<number, number>();
    for (const row of rows) won.set(Number(row.ord), Number(row.revision));
    for (let i = 0; i < batch.length; i++) {
      const put = batch[i] as QueuedPut;
      const revision = won.get(i);
      if (revision === undefined) put.reject(new StateConflictError(put.scope, put.key, put.expected));
      else put.resolve(revision);
    }
  }
}

/** A prepared statement's name for `text` (node-postgres prepares it once per connection). */
export function statementName(prefix: string, text: string): string {
  return `${prefix}_${createHash("sha256").update(text).digest("hex").slice(0, 16)}`;
}
