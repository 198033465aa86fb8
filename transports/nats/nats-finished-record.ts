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
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { ConnectionError, describeThrown } from "../../src/errors.js";
import type { FinishedEntry, FinishedRecord } from "../finished-record.js";
import { portableKey } from "../state-store.js";
import type { Bytes } from "../transport.js";
import { isWrongLastSequence, type NatsEntityLink } from "./nats-state-store.js";

/** Headers of a write that only a key with no value yet takes. */
function writeOnce(): MsgHdrs {
  const h = headers();
  h.set("Nats-Expected-Last-Subject-Sequence", "0");
  return h;
}

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
  /** The bucket was opened (or created): plain publishes to it are stored. */
  private ready = false;

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

  /**
   * The worker's write: a plain publish to the key's subject with the write-once condition
   * (expected last sequence 0), no answer awaited — the stream refuses a second one all the same.
   * About half a worker's CPU per task less than a `create` (a JetStream request with its ack).
   */
  noteOutcome(taskId: string, outcome: Bytes): void {
    const subject = `$KV.${this.bucketName}.d.${portableKey(taskId)}`;
    const send = () => this.link().nc.publish(subject, outcome, { headers: writeOnce() });
    if (this.ready) send();
    else
      this.kv().then(
        () => {
          this.ready = true;
          send();
        },
        () => {}, // no bucket: the task is simply not recorded
      );
  }

  async recordRetry(taskId: string, attempt: number): Promise<void> {
    const kv = await this.kv();
    await kv.put(`r.${portableKey(taskId)}`, String(attempt));
  }

  async forget(taskId: string): Promise<void> {
    const kv = await this.kv();
    const key = portableKey(taskId);
    await Promise.all([kv.delete(`d.${key}`), kv.delete(`r.${key}`)]);
  }

  /** Deletes the bucket, whoever created it. */
  async destroy(): Promise<void> {
    this.bucket = undefined;
    this.ready = false;
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
