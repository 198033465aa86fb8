/**
 * The record of finished tasks on JetStream (transports/finished-record.ts): a KV bucket per
 * namespace, `fa_done_<namespace>`, history 1, entries expiring after `finishedTtlMs` and the
 * bucket capped at MAX_BYTES (when full, new records are refused until old ones expire: those
 * tasks are simply not protected). Keys: `d.<task id>` holds the outcome event, written once
 * (`create`: a second write fails, which tells a run that came after the outcome); `r.<task id>`
 * the last attempt that ended with a retry.
 */
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { ConnectionError, describeThrown } from "../../src/errors.js";
import type { FinishedEntry, FinishedRecord } from "../finished-record.js";
import { portableKey } from "../state-store.js";
import type { Bytes } from "../transport.js";
import { isWrongLastSequence, type NatsEntityLink } from "./nats-state-store.js";

/** The bucket's cap: 64 MiB of outcomes (about 300,000 small ones). */
export const FINISHED_MAX_BYTES = 64 * 1024 * 1024;

/** Deletes a namespace's record of finished tasks, if there is one (streamsOnClose "delete"). */
export async function deleteFinishedBucket(nc: NatsConnection, namespace: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(`KV_fa_done_${namespace}`).catch((error: unknown) => {
    if (!/not found/i.test(describeThrown(error))) throw error;
  });
}

export class NatsFinishedRecord implements FinishedRecord {
  private bucket?: Promise<KV>;

  constructor(
    private readonly link: () => NatsEntityLink,
    readonly ttlMs: number,
  ) {}

  get bucketName(): string {
    return `fa_done_${this.link().namespace}`;
  }

  async lookup(taskId: string): Promise<FinishedEntry | null> {
    const kv = await this.kv();
    const key = portableKey(taskId);
    const [done, retried] = await Promise.all([kv.get(`d.${key}`), kv.get(`r.${key}`)]);
    const outcome = done !== null && done.operation === "PUT" ? done.value : null;
    const retriedAttempt =
      retried !== null && retried.operation === "PUT" ? Number(retried.string()) || 0 : 0;
    if (outcome === null && retriedAttempt === 0) return null;
    return { outcome, retriedAttempt };
  }

  async recordOutcome(taskId: string, outcome: Bytes): Promise<boolean> {
    const kv = await this.kv();
    try {
      await kv.create(`d.${portableKey(taskId)}`, outcome);
      return true;
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw error;
    }
  }

  async recordRetry(taskId: string, attempt: number): Promise<void> {
    const kv = await this.kv();
    await kv.put(`r.${portableKey(taskId)}`, String(attempt));
  }

  /** Deletes the bucket, whoever created it. */
  async destroy(): Promise<void> {
    this.bucket = undefined;
    const link = this.link();
    await deleteFinishedBucket(link.nc, link.namespace);
  }

  private kv(): Promise<KV> {
    if (!this.bucket) {
      const link = this.link();
      const name = `fa_done_${link.namespace}`;
      this.bucket = new Kvm(link.nc)
        .create(name, {
          history: 1,
          ttl: this.ttlMs,
          max_bytes: FINISHED_MAX_BYTES,
          storage: link.storage === "memory" ? StorageType.Memory : StorageType.File,
          replicas: link.replicas,
        })
        .catch((error: unknown) => {
          this.bucket = undefined;
          throw new ConnectionError(
            `Could not open the JetStream KV bucket "${name}" (the record of finished tasks): ` +
              `${describeThrown(error)}. Check that JetStream has room for it, or set finishedTtlMs: 0.`,
            { cause: error, retryable: true },
          );
        });
    }
    return this.bucket;
  }
}
