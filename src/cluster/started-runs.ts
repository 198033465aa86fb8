/**
 * What a process remembers of the task runs it started, per transport, to see duplicate runs the
 * delivery count cannot show: a broker that stopped uncleanly can lose its consumers' state and
 * deliver again, as first deliveries (delivery count 1), messages that already ran. Two things
 * help a worker there:
 * - the ids of the tasks this process started lately (a bounded window): a first delivery of a
 *   task started here before is a re-run;
 * - whether the transport reconnected lately: for a while after it did, every delivery is looked
 *   up in the record of finished tasks (transports/finished-record.ts), not only redeliveries.
 */
import { DedupWindow } from "../../transports/dedup-window.js";
import type { Transport } from "../../transports/transport.js";

/** How long, after a reconnect, every delivery is checked against the record of finished tasks. */
export const RECONNECT_CHECK_MS = 120_000;
/** How long, and how many, started task ids a process remembers. */
const STARTED_WINDOW_MS = 10 * 60_000;
const STARTED_MAX = 100_000;

const byTransport = new WeakMap<Transport, StartedRuns>();

export class StartedRuns {
  /** Undefined where delivery counts are exact (Transport.exactDeliveryCounts): nothing to remember. */
  private readonly started?: DedupWindow;
  private checkUntil = 0;

  /** The one per transport in this process (its workers share it). */
  static of(transport: Transport, now: () => number): StartedRuns {
    let runs = byTransport.get(transport);
    if (!runs) {
      runs = new StartedRuns(transport, now);
      byTransport.set(transport, runs);
    }
    return runs;
  }

  private constructor(
    transport: Transport,
    private readonly now: () => number,
  ) {
    if (transport.exactDeliveryCounts !== true) {
      this.started = new DedupWindow(STARTED_WINDOW_MS, STARTED_MAX, now);
    }
    let lost = false;
    transport.onStatus((e) => {
      if (e.state === "reconnecting") lost = true;
      else if (e.state === "connected" && lost) {
        lost = false;
        this.checkUntil = this.now() + RECONNECT_CHECK_MS;
      }
    });
  }

  /** Notes that a delivery of `taskId` is about to run; true when this process started it before. */
  startedBefore(taskId: string): boolean {
    return this.started !== undefined && this.started.add(taskId) === undefined;
  }

  /** True for a while after the transport reconnected: check every delivery, first ones too. */
  get afterReconnect(): boolean {
    return this.now() < this.checkUntil;
  }
}
