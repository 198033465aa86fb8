/**
 * The in-memory state store: one process, values kept as given (no copy), a revision counter per
 * store. Compare-and-set like the others, so what works here works on KV and PostgreSQL.
 */
import { PayloadTooLargeError, StateConflictError, StateError } from "../../src/errors.js";
import { assertStateAddress, type StateStore, type StoredValue } from "../state-store.js";
import type { Bytes } from "../transport.js";

export interface MemoryStateStoreOptions {
  /** Default 1 MiB, as JetStream KV's default message size, so what fits here fits there. */
  maxValueBytes?: number;
}

export class MemoryStateStore implements StateStore {
  readonly kind = "memory";
  readonly maxValueBytes: number;
  private readonly scopes = new Map<string, Map<string, StoredValue>>();
  private revision = 0;
  private closed = false;

  constructor(options: MemoryStateStoreOptions = {}) {
    this.maxValueBytes = options.maxValueBytes ?? 1024 * 1024;
  }

  async connect(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.scopes.clear();
  }

  async get(scope: string, key: string): Promise<StoredValue | null> {
    this.assertOpen();
    assertStateAddress(scope, key);
    return this.scopes.get(scope)?.get(key) ?? null;
  }

  async put(scope: string, key: string, data: Bytes, expected: number | null): Promise<number> {
    this.assertOpen();
    assertStateAddress(scope, key);
    if (data.byteLength > this.maxValueBytes) {
      throw new PayloadTooLargeError(data.byteLength, this.maxValueBytes, "state value");
    }
    let values = this.scopes.get(scope);
    if (!values) {
      values = new Map();
      this.scopes.set(scope, values);
    }
    const current = values.get(key);
    if ((current?.revision ?? null) !== expected) throw new StateConflictError(scope, key, expected);
    const revision = ++this.revision;
    values.set(key, { data, revision });
    return revision;
  }

  async delete(scope: string, key: string): Promise<void> {
    this.assertOpen();
    assertStateAddress(scope, key);
    this.scopes.get(scope)?.delete(key);
  }

  /** Keys held in a scope (for tests and the dashboard of an in-memory deployment). */
  size(scope: string): number {
    return this.scopes.get(scope)?.size ?? 0;
  }

  private assertOpen(): void {
    if (this.closed) throw new StateError("This MemoryStateStore is closed; create a new one.");
  }
}
