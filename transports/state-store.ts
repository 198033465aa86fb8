/**
 * The state-store contract: durable values under (scope, key), each written by compare-and-set on
 * a revision the store hands out. Entities keep their persisted snapshots here (scope: the entity
 * type, key: the entity id); the revision is their fencing token: a holder that read revision r
 * can only write while the value is still at r, so a stale or frozen holder cannot overwrite newer
 * state. One implementation per store (memory, JetStream KV, PostgreSQL), all passing the one
 * conformance suite in test/conformance/state-store-conformance.ts.
 *
 * Values are bytes; a store may keep the bytes it is given (the in-memory one does): callers must
 * not modify them after put().
 */
import { InvalidNameError } from "../src/errors.js";
import { showValue } from "../src/limits.js";
import type { Bytes } from "./transport.js";

export interface StoredValue {
  readonly data: Bytes;
  /**
   * Opaque: compare for equality and hand back to put(), nothing else (a JetStream KV revision is
   * a stream sequence, not a count of writes). Always a positive safe integer.
   */
  readonly revision: number;
}

export interface StateStore {
  /** "memory" | "nats-kv" | "postgres" (or a third party's). */
  readonly kind: string;
  /** The largest value put() accepts. */
  readonly maxValueBytes: number;
  /** Idempotent; concurrent calls share one attempt. get/put connect on first use too. */
  connect(): Promise<void>;
  /** Idempotent. Calls after it reject with a StateError. */
  close(): Promise<void>;
  /** The value and its revision, or null when the key holds nothing. */
  get(scope: string, key: string): Promise<StoredValue | null>;
  /**
   * Writes `data` if the key is at revision `expected` (null: only if the key holds nothing).
   * Resolves with the new revision; rejects with StateConflictError when the key moved on (or,
   * for null, exists), PayloadTooLargeError over maxValueBytes, a TransportError when the store
   * cannot be reached (then the write may or may not have happened: get() tells).
   */
  put(scope: string, key: string, data: Bytes, expected: number | null): Promise<number>;
  /** Removes the key (nothing if absent). */
  delete(scope: string, key: string): Promise<void>;
}

const SCOPE = /^[A-Za-z0-9_-]{1,64}$/;
/** Longest key, in UTF-16 code units (an entity id). */
export const MAX_STATE_KEY_LENGTH = 256;

/** Throws InvalidNameError naming the problem when (scope, key) cannot address a value. */
export function assertStateAddress(scope: unknown, key: unknown): void {
  if (typeof scope !== "string" || !SCOPE.test(scope)) {
    throw new InvalidNameError(
      `Invalid state scope ${showValue(scope)}: use 1-64 letters, digits, "_" or "-" (an entity type name).`,
    );
  }
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_STATE_KEY_LENGTH) {
    throw new InvalidNameError(
      `Invalid state key ${typeof key === "string" ? `of ${key.length} characters` : showValue(key)}: ` +
        `use a non-empty string of at most ${MAX_STATE_KEY_LENGTH} characters (an entity id).`,
    );
  }
  if (/\p{Cs}/u.test(key)) {
    throw new InvalidNameError(
      `Invalid state key ${showValue(key)}: it holds a lone surrogate, which has no UTF-8 form.`,
    );
  }
}

/**
 * A key in the characters every store's own key syntax accepts (`[A-Za-z0-9_-]`): safe keys as
 * they are, others as "=" + base64url of their UTF-8 (no safe key starts with "=", so the two
 * forms never collide).
 */
export function portableKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : `=${Buffer.from(key, "utf8").toString("base64url")}`;
}

/** The key portableKey() was made from. */
export function keyFromPortable(portable: string): string {
  return portable.startsWith("=") ? Buffer.from(portable.slice(1), "base64url").toString("utf8") : portable;
}
