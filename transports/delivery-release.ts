/**
 * Releasing the deliveries of a worker declared dead, from another process: a broker capability
 * beyond work queues, offered where the broker would otherwise wait for its own deadline.
 *
 * On JetStream a delivery that its holder never settles comes back only after AckWait (30 s by
 * default); once the cluster has declared the holder dead (`workerTimeoutMs`) that wait is pure
 * delay. The holder reports a handle for each unsettled delivery (in its heartbeats and its
 * "started" events); the coordinator that declares it dead sends those deliveries back at once,
 * and tells the holder which ones it released, so that a holder that was only slow forgets them
 * instead of settling them a second time (fencing).
 *
 * RabbitMQ needs none of this (a dead holder's connection closes and its deliveries return at
 * once), and the in-memory transport is one process: neither implements it.
 */
import type { Consumer, Delivery } from "./transport.js";

export interface DeliveryRelease {
  /**
   * How long the broker leaves a delivery with a holder that went silent before it takes it back
   * by itself (JetStream: AckWait, counted from the holder's last in-progress signal, which
   * workers send every third of it). A release later than about two thirds of this after the
   * holder's last sign of life could reach a new holder of the same message: callers skip it.
   */
  readonly redeliverAfterMs: number;
  /**
   * How long a holder's requests for more deliveries stay open at the broker after it last
   * reached it (JetStream: a standing pull's expiry, `idlePullMs`). A holder cut off by a network
   * partition still has them there: a delivery released before they lapse can be handed straight
   * back to it, where it waits out the broker's deadline again. Callers delay releases past it.
   */
  readonly requestsLingerMs: number;
  /** The handle of one delivery (to report), or undefined when it has none (not this broker's). */
  handleOf(delivery: Delivery): string | undefined;
  /** Handles of every delivery `consumer` holds unsettled: handed to its handler, or held back. */
  heldBy(consumer: Consumer): string[];
  /**
   * Sends these deliveries back to their queue, from any process: to be handed out again at once,
   * or after `delayMs` (the broker takes them from their holder now either way). Handles that are
   * malformed or not of this transport's namespace are ignored; resolves once the broker has them.
   */
  release(handles: readonly string[], options?: { delayMs?: number }): Promise<void>;
  /**
   * Forgets deliveries `consumer` holds, without settling them and without sending them back
   * when it stops: another process released them already.
   */
  forget(consumer: Consumer, handles: ReadonlySet<string>): void;
}
