/**
 * What a coordinator does once it declared a worker of another process dead (no heartbeat for
 * workerTimeoutMs): the cluster's decision drives what happens next.
 *
 * 1. Release: where the transport can (NATS), the deliveries the worker held go back to their
 *    queue at once, instead of after the broker's own deadline (AckWait, 30 s by default). Only
 *    while that is safe: a silent holder keeps its deliveries for at least two thirds of AckWait
 *    after its last sign of life (it renews them every third), so a release later than that (less
 *    a margin) could reach the message's next holder and run it a second time; then the broker's
 *    own redelivery, due soon anyway, is left to do it. And not to the worker itself: one cut
 *    off by a network partition still has requests for more work waiting at the broker (NATS:
 *    standing pulls, for idlePullMs), which would take a delivery released at once straight back
 *    into the partition. The broker takes the deliveries back at once, but hands them out again
 *    only once those requests have lapsed (releaseDelayMs): nothing to wait for in the usual
 *    case, where workerTimeoutMs is longer than a heartbeat interval plus idlePullMs.
 * 2. Fence: a "fence" control command tells the worker it was declared dead and which deliveries
 *    were released. A worker that was only slow (frozen, cut off) leaves at once when it hears it,
 *    forgets those deliveries instead of settling them, and its pool replaces it under a new id.
 *    The command is sent again whenever a heartbeat of a worker declared dead arrives (it may have
 *    missed the first: fan-out is at most once), at most once per heartbeat interval.
 * 3. Other coordinators: a fence heard from another coordinator makes this one declare the worker
 *    dead too, without releasing again (a second release could reach a new holder).
 */
import type { DeliveryRelease } from "../../transports/delivery-release.js";
import type { Transport } from "../../transports/transport.js";
import type { Clock } from "../clock.js";
import { encode } from "../codec.js";
import { describeThrown } from "../errors.js";
import type { Logger } from "../logger.js";
import { subjects } from "../names.js";

/** Fenced workers remembered (the oldest forgotten first). */
const MEMORY = 10_000;
/** Kept between the last moment a release is safe and the moment it is sent (clock rates, latency). */
export const RELEASE_MARGIN_MS = 1000;

/** Whether releasing now can only reach the dead holder's own deliveries (see above). */
export function releaseIsSafe(redeliverAfterMs: number, silentForMs: number): boolean {
  return silentForMs <= (redeliverAfterMs * 2) / 3 - RELEASE_MARGIN_MS;
}

/**
 * How long to hold back a release so that the dead worker's own waiting requests for work
 * (`lingerMs`) have lapsed: they reached the broker before its next heartbeat was due
 * (`intervalMs` after the last one heard, at `lastSeen`), plus the margin. Without a known
 * interval, as if it was in touch until now.
 */
export function releaseDelayMs(
  now: number,
  lastSeen: number,
  intervalMs: number | undefined,
  lingerMs: number,
): number {
  const lastContact = intervalMs === undefined ? now : Math.min(now, lastSeen + intervalMs);
  return Math.max(0, lastContact + lingerMs + RELEASE_MARGIN_MS - now);
}

interface Fenced {
  released: string[];
  lastSentAt: number;
}

export interface FailoverOptions {
  transport: Transport;
  clock: Clock;
  logger: Logger;
}

export interface FailoverReport {
  released: number;
  /** How long the broker holds them back before handing them out again (see releaseDelayMs). */
  delayMs?: number;
  /** Why nothing was released, when nothing was. */
  skipped?: string;
}

export class Failover {
  /** Workers this coordinator fenced: what it released, and when it last said so. */
  private readonly fenced = new Map<string, Fenced>();

  constructor(private readonly options: FailoverOptions) {}

  /**
   * A remote worker was declared dead: releases what it held (when safe) and fences it.
   * `lastSeen` is when its last heartbeat arrived; `intervalMs` its heartbeat interval.
   */
  async declaredDead(
    workerId: string,
    lastSeen: number,
    held: readonly string[],
    intervalMs?: number,
  ): Promise<FailoverReport> {
    const release = this.options.transport.deliveryRelease?.();
    const report = await this.release(release, lastSeen, held, intervalMs);
    this.remember(workerId, report.released > 0 ? [...held] : []);
    await this.sendFence(workerId);
    return report;
  }

  /** A heartbeat from a worker declared dead: it has not heard yet; say it again (not too often). */
  async lateHeartbeat(workerId: string, intervalMs: number): Promise<void> {
    const fenced = this.fenced.get(workerId) ?? this.remember(workerId, []);
    if (this.options.clock.now() - fenced.lastSentAt < Math.max(100, intervalMs)) return;
    await this.sendFence(workerId);
  }

  /** Whether this coordinator fenced the worker, or heard another one do it. */
  isFenced(workerId: string): boolean {
    return this.fenced.has(workerId);
  }

  /** Another coordinator fenced the worker (and released what it could): remember it, send nothing. */
  heard(workerId: string): void {
    if (!this.fenced.has(workerId)) this.remember(workerId, []).lastSentAt = this.options.clock.now();
  }

  private async release(
    release: DeliveryRelease | undefined,
    lastSeen: number,
    held: readonly string[],
    intervalMs: number | undefined,
  ): Promise<FailoverReport> {
    if (!release || held.length === 0) return { released: 0 };
    const now = this.options.clock.now();
    const silentFor = now - lastSeen;
    if (!releaseIsSafe(release.redeliverAfterMs, silentFor)) {
      return {
        released: 0,
        skipped:
          `silent for ${silentFor} ms, past two thirds of the broker's redelivery deadline ` +
          `(${release.redeliverAfterMs} ms) less ${RELEASE_MARGIN_MS} ms: the broker redelivers them itself`,
      };
    }
    const delayMs = releaseDelayMs(now, lastSeen, intervalMs, release.requestsLingerMs);
    try {
      await release.release(held, { delayMs });
      return { released: held.length, delayMs };
    } catch (error) {
      return { released: 0, skipped: `the release failed: ${describeThrown(error)}` };
    }
  }

  private remember(workerId: string, released: string[]): Fenced {
    if (this.fenced.size >= MEMORY) {
      const oldest = this.fenced.keys().next().value;
      if (oldest !== undefined) this.fenced.delete(oldest);
    }
    const entry = { released, lastSentAt: 0 };
    this.fenced.set(workerId, entry);
    return entry;
  }

  private async sendFence(workerId: string): Promise<void> {
    const fenced = this.fenced.get(workerId);
    if (!fenced) return;
    fenced.lastSentAt = this.options.clock.now();
    const command = { v: 1, kind: "fence", workerIds: [workerId], released: fenced.released };
    try {
      await this.options.transport.publish(
        subjects.control,
        encode(command, this.options.transport.maxPayloadBytes, "fence command"),
      );
    } catch (error) {
      this.options.logger.warn(
        { workerId, err: describeThrown(error) },
        "could not tell a worker declared dead to leave; it will be told at its next heartbeat",
      );
    }
  }
}
