/**
 * The entity-mailbox contract: partitioned, ordered mailboxes with one holder per partition at a
 * time. A mailbox ("box", an entity type) has a fixed number of partitions; an entity id hashes to
 * one of them, so the events of one id share one ordered partition, and different partitions run
 * in parallel on different holders. One implementation per broker (memory, NATS, AMQP), each in its
 * own broker namespace that no work queue or fan-out subject can reach, all passing the one suite
 * in test/conformance/entity-mailbox-conformance.ts.
 *
 * Guarantees an implementation gives:
 *  - Order: a partition's messages are handed to its holder in the order they were appended (one
 *    sender's sends, in the order their promises were awaited).
 *  - One holder: of the claims on a partition (hold()), one at a time receives its messages; the
 *    others wait (a standby) and take over when it releases or its process, connection or lease dies.
 *  - Hand-over: messages not acked when a holder lets go (release(), a crash, a lost lease) go to the
 *    next holder before any later message of the partition, in their order.
 *  - At least once: an acked message never comes back; an unacked one may come again (after a reset).
 * What it does not give: fencing of a holder that is frozen and wakes up still believing it holds
 * the partition. That is the state store's job (compare-and-set on the revision).
 */
import { InvalidNameError } from "../src/errors.js";
import { showValue } from "../src/limits.js";
import type { Bytes } from "./transport.js";

export interface MailboxMessage {
  readonly partition: number;
  readonly body: Bytes;
  /**
   * 1 on the first delivery; more when it comes again to the same holder. Informational: a broker
   * that counts per consumer (NATS, a consumer per holder epoch) starts again at 1 after a hand-over.
   */
  readonly deliveryCount: number;
  /**
   * The message's position in its box where the broker numbers them (NATS: the stream sequence),
   * the same on every delivery of it and larger for every later append to the box; absent
   * elsewhere. The entity host stores the last one applied per id and skips a delivery at or below it.
   */
  readonly seq?: number;
  /**
   * Done: the message leaves the partition. Messages of one partition may be acked in any order.
   * A no-op for a message handed out before a reset (it comes again).
   */
  ack(): void;
}

export interface MailboxSendOptions {
  /** De-duplicates a re-send of the same message where the broker can (JetStream, memory). */
  id?: string;
}

export interface HoldOptions {
  /** Who holds (a worker id), for leases and logs. */
  holder: string;
  /** Messages of the partition handed over before the first of them is acked (the prefetch). */
  inFlight: number;
  /**
   * Where the mailbox hands partitions over by lease (NATS): how long a holder that went silent
   * keeps its partition. Brokers that see a holder's connection die ignore it.
   */
  failoverMs: number;
  /**
   * The broker took back the messages handed over and not yet acked (connection lost, lease lost):
   * drop them, they come again in order. The claim stays; messages resume when it holds again.
   */
  onReset(reason: Error): void;
}

export interface PartitionHold {
  readonly partition: number;
  /**
   * Gives the partition up: no more messages; those not acked go to the next holder, first.
   * Ack what is finished before calling it. Idempotent.
   */
  release(): Promise<void>;
}

export type MailboxHandler = (message: MailboxMessage) => void;

export interface EntityMailbox {
  /** Appends to a partition; resolves once the broker stored it. */
  send(
    box: string,
    partitions: number,
    partition: number,
    body: Bytes,
    options?: MailboxSendOptions,
  ): Promise<void>;
  /**
   * Appends to a partition once `delayMs` passed (a durable timer on a broker: it survives a
   * restart of the sender and of the broker). Not ordered with other sends. Resolves once stored.
   */
  sendLater(
    box: string,
    partitions: number,
    partition: number,
    body: Bytes,
    delayMs: number,
    options?: MailboxSendOptions,
  ): Promise<void>;
  /**
   * Claims a partition: resolves once the claim is registered (holding, or waiting as a standby).
   * `onMessage` receives the partition's messages while this claim holds it.
   */
  hold(
    box: string,
    partitions: number,
    partition: number,
    onMessage: MailboxHandler,
    options: HoldOptions,
  ): Promise<PartitionHold>;
  /** Messages waiting in a partition (not counting those handed over), where the broker can tell. */
  depth(box: string, partitions: number, partition: number): Promise<number>;
  /** Deletes what a box declared on the broker (its partitions and timers). For tests and retiring a type. */
  remove(box: string, partitions: number): Promise<void>;
}

const BOX = /^[A-Za-z0-9_-]{1,64}$/;
/** At most this many partitions per box (each is a queue or consumer on the broker). */
export const MAX_PARTITIONS = 256;

/** Throws InvalidNameError / RangeError-like InvalidNameError when a box or partition is invalid. */
export function assertPartition(box: unknown, partitions: unknown, partition?: unknown): void {
  if (typeof box !== "string" || !BOX.test(box)) {
    throw new InvalidNameError(
      `Invalid mailbox (entity type) name ${showValue(box)}: use 1-64 letters, digits, "_" or "-".`,
    );
  }
  if (
    !Number.isInteger(partitions) ||
    (partitions as number) < 1 ||
    (partitions as number) > MAX_PARTITIONS
  ) {
    throw new InvalidNameError(
      `Invalid partition count ${showValue(partitions)} for "${box}": use an integer from 1 to ${MAX_PARTITIONS}.`,
    );
  }
  if (
    partition !== undefined &&
    (!Number.isInteger(partition) ||
      (partition as number) < 0 ||
      (partition as number) >= (partitions as number))
  ) {
    throw new InvalidNameError(
      `Invalid partition ${showValue(partition)} of "${box}": use an integer from 0 to ${(partitions as number) - 1}.`,
    );
  }
}

/** The partition of an entity id: FNV-1a of its UTF-16 units, modulo `partitions`. Stable forever. */
export function partitionOf(id: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}
