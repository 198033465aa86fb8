/**
 * The JetStream KV state store: one bucket per namespace (`fa_state_<namespace>`, history 1), a
 * key per value (`<scope>.<id>`, ids outside KV's key syntax base64url-encoded). The KV revision
 * (the stream sequence of the key's last write) is the compare-and-set token: `create` for a new
 * key, `update(key, value, revision)` otherwise; JetStream refuses a write whose expected last
 * sequence is not the key's (error 10071), which is the conflict. Sequences never repeat, so a
 * deleted and re-created key cannot be mistaken for the one a stale holder read.
 */
import { JetStreamApiError, StorageType } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  ConnectionError,
  describeThrown,
  PayloadTooLargeError,
  StateConflictError,
  StateError,
  TransportError,
} from "../../src/errors.js";
import { assertStateAddress, portableKey, type StateStore, type StoredValue } from "../state-store.js";
import type { Bytes } from "../transport.js";

/** What the entity capabilities need from a connected NatsTransport. */
export interface NatsEntityLink {
  readonly nc: NatsConnection;
  readonly namespace: string;
  readonly storage: "file" | "memory";
  readonly replicas: number;
  readonly maxPayloadBytes: number;
  /** A JetStream request's timeout (publishTimeoutMs). */
  readonly timeoutMs: number;
  /** Sends of a mailbox message before it fails (with timeoutMs × publishAttempts in all). */
  readonly publishAttempts: number;
}

/** JetStream: "wrong last sequence" (the compare-and-set failed). */
const WRONG_LAST_SEQUENCE = 10071;

export class NatsStateStore implements StateStore {
  readonly kind = "nats-kv";
  private bucket?: Promise<KV>;
  private closed = false;

  constructor(private readonly link: () => NatsEntityLink) {}

  get maxValueBytes(): number {
    return this.link().maxPayloadBytes;
  }

  /** The KV bucket's name. */
  get bucketName(): string {
    return `fa_state_${this.link().namespace}`;
  }

  async connect(): Promise<void> {
    await this.kv();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async get(scope: string, key: string): Promise<StoredValue | null> {
    assertStateAddress(scope, key);
    const kv = await this.kv();
    try {
      const entry = await kv.get(keyOf(scope, key));
      if (entry === null || entry.operation !== "PUT") return null;
      return { data: entry.value, revision: entry.revision };
    } catch (error) {
      throw translate(error, "read");
    }
  }

  async put(scope: string, key: string, data: Bytes, expected: number | null): Promise<number> {
    assertStateAddress(scope, key);
    if (data.byteLength > this.maxValueBytes) {
      throw new PayloadTooLargeError(data.byteLength, this.maxValueBytes, "state value");
    }
    const kv = await this.kv();
    const k = keyOf(scope, key);
    try {
      return expected === null ? await kv.create(k, data) : await kv.update(k, data, expected);
    } catch (error) {
      if (isWrongLastSequence(error)) throw new StateConflictError(scope, key, expected);
      throw translate(error, "write");
    }
  }

  async delete(scope: string, key: string): Promise<void> {
    assertStateAddress(scope, key);
    const kv = await this.kv();
    try {
      await kv.purge(keyOf(scope, key));
    } catch (error) {
      throw translate(error, "delete");
    }
  }

  /** Deletes the whole bucket (tests, teardown). */
  async destroy(): Promise<void> {
    const kv = await this.kv();
    await kv.destroy();
    this.bucket = undefined;
  }

  private kv(): Promise<KV> {
    if (this.closed)
      return Promise.reject(new StateError("This NATS KV state store is closed; create a new one."));
    if (!this.bucket) {
      const link = this.link();
      const name = `fa_state_${link.namespace}`;
      this.bucket = new Kvm(link.nc)
        .create(name, {
          history: 1,
          storage: link.storage === "memory" ? StorageType.Memory : StorageType.File,
          replicas: link.replicas,
        })
        .catch((error: unknown) => {
          this.bucket = undefined;
          throw new ConnectionError(
            `Could not open the JetStream KV bucket "${name}" for entity state: ${describeThrown(error)}. ` +
              "Check that the server runs with JetStream enabled and has room for a bucket.",
            { cause: error, retryable: true },
          );
        });
    }
    return this.bucket;
  }
}

function keyOf(scope: string, key: string): string {
  return `${scope}.${portableKey(key)}`;
}

export function isWrongLastSequence(error: unknown): boolean {
  if (error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE) return true;
  const cause = (error as { cause?: unknown })?.cause;
  return cause instanceof JetStreamApiError && cause.code === WRONG_LAST_SEQUENCE;
}

function translate(error: unknown, what: string): Error {
  return new TransportError(`Could not ${what} entity state in JetStream KV: ${describeThrown(error)}.`, {
    cause: error,
    retryable: true,
  });
}
