/**
 * Where a task goes when the worker that took it does not serve it (layout 2, src/names.ts). Every
 * task of a logical queue is submitted to its shared lane, which every worker of the queue
 * consumes; a worker that takes a task of a type it has no handler for, or with a tag it lacks,
 * moves it to the lane of a live worker profile that serves it (learned from heartbeats, which
 * name each worker's profile lane), or, when no live worker serves it, parks it: puts it back on
 * the shared lane, delayed by PARK_DELAY_MS, so it waits for a worker without bouncing at once.
 * A move is a new message: the attempts it already had travel in the task (`priorAttempts`), so
 * retries and poison detection count as before. Homogeneous workers never move anything, and a
 * worker learns profiles only after its first move (it listens to heartbeats from then on).
 * A lane whose profile stops heartbeating (all its workers gone, e.g. replaced by another version)
 * would keep what was moved there: the worker that moved tasks to it **rescues** it once the profile
 * is silent for PROFILE_TTL_MS, putting its tasks back on the shared lane.
 */
import type { Delivery, Subscription, Transport } from "../transports/transport.js";
import { type Clock, every } from "./clock.js";
import { decodeTask, decodeWorkerEvent, encode, type TaskEnvelope } from "./codec.js";
import { describeThrown } from "./errors.js";
import type { Logger } from "./logger.js";
import { isWorkQueueOf, laneOf, subjects } from "./names.js";

/** How long a parked task waits before a worker looks at it again. */
export const PARK_DELAY_MS = 2000;
/** Profiles remembered at most (they come from heartbeats, bounded all the same). */
const MAX_PROFILES = 1000;
/** A profile whose last worker was heard from longer ago than this is not moved to, and its lane is rescued. */
export const PROFILE_TTL_MS = 60_000;
/** How long one rescue of a lane runs at most. */
const RESCUE_MS = 5000;

interface KnownProfile {
  types: ReadonlySet<string>;
  tags: ReadonlySet<string>;
  /** Last heartbeat of a worker of the profile (clock ms). */
  seenAt: number;
}

export interface LaneRouterOptions {
  transport: Transport;
  /** The logical queue whose lanes this worker consumes. */
  queue: string;
  /** This worker's own profile lane (never a move's target). */
  ownLane(): string | undefined;
  clock: Clock;
  logger: Logger;
}

export class LaneRouter {
  /** Tasks moved to another profile's lane. */
  moved = 0;
  /** Tasks parked (no live worker served them). */
  parked = 0;

  private readonly profiles = new Map<string, KnownProfile>();
  /** Tasks put back on the shared lane from the lanes of profiles gone silent. */
  rescued = 0;

  private listening?: Promise<Subscription | undefined>;
  private stopped = false;
  private next = 0;
  /** Lanes this worker moved tasks to: rescued when their profile goes silent. */
  private readonly movedTo = new Set<string>();
  private stopWatching?: () => void;
  private rescuing?: Promise<void>;

  constructor(private readonly options: LaneRouterOptions) {}

  /** Moves or parks a task this worker does not serve; settles `delivery` (ack) once it is on its way. */
  async forward(delivery: Delivery, task: TaskEnvelope, priorAttempts: number): Promise<void> {
    this.listen();
    const { transport, queue } = this.options;
    const target = this.laneFor(task.type, task.tags);
    // The attempts so far: this delivery did not run, the ones before it did (or died trying).
    const prior = priorAttempts + delivery.deliveryCount - 1;
    const body =
      prior === (task.priorAttempts ?? 0)
        ? delivery.body
        : encode({ ...task, priorAttempts: prior }, transport.maxPayloadBytes, "task message");
    // The task's own priority (a broker may keep only its level).
    const priority =
      Number.isInteger(task.priority) && task.priority >= 0 && task.priority <= 255
        ? task.priority
        : delivery.priority;
    try {
      if (target !== undefined) {
        await transport.enqueue(target, body, { priority });
        this.moved++;
        this.watch(target);
      } else {
        await transport.enqueue(laneOf(queue), body, { priority, delayMs: PARK_DELAY_MS });
        this.parked++;
      }
    } catch (error) {
      await delivery.nack({ delayMs: 1000 }).catch(() => {});
      throw error;
    }
    await delivery.ack();
  }

  /** Remembers a lane moved to, and looks for silent profiles every half PROFILE_TTL_MS. */
  private watch(lane: string): void {
    this.movedTo.add(lane);
    if (this.stopWatching || this.stopped) return;
    this.stopWatching = every(this.options.clock, PROFILE_TTL_MS / 2, () => {
      this.rescuing ??= this.rescueSilent().finally(() => {
        this.rescuing = undefined;
      });
    });
  }

  /** Puts the tasks of lanes whose profile went silent back on the shared lane. */
  private async rescueSilent(): Promise<void> {
    const now = this.options.clock.now();
    for (const lane of [...this.movedTo]) {
      const p = this.profiles.get(lane);
      if (this.stopped || (p && now - p.seenAt <= PROFILE_TTL_MS)) continue;
      this.movedTo.delete(lane);
      try {
        await this.rescue(lane);
      } catch (error) {
        this.options.logger.warn(
          { err: describeThrown(error), lane },
          "could not rescue a silent profile's lane",
        );
      }
    }
    if (this.movedTo.size === 0) {
      this.stopWatching?.();
      this.stopWatching = undefined;
    }
  }

  private async rescue(lane: string): Promise<void> {
    const { transport, queue, clock } = this.options;
    let pending = await transport.depth(lane);
    if (pending === 0) return;
    const shared = laneOf(queue);
    let inFlight = 0;
    const consumer = await transport.consume(
      [lane],
      (d) => {
        inFlight++;
        void (async () => {
          let body = d.body;
          let priority = d.priority;
          try {
            const task = decodeTask(d.body);
            priority = task.priority;
            const prior = (task.priorAttempts ?? 0) + d.deliveryCount - 1;
            if (prior !== (task.priorAttempts ?? 0))
              body = encode({ ...task, priorAttempts: prior }, transport.maxPayloadBytes, "task message");
          } catch {
            // not a task: moved as it is, a worker dead-letters it
          }
          await transport.enqueue(shared, body, { priority });
          await d.ack();
          this.rescued++;
          pending--;
        })()
          .catch(() => d.nack().catch(() => {}))
          .finally(() => inFlight--);
      },
      { concurrency: 8 },
    );
    const until = clock.now() + RESCUE_MS;
    try {
      while ((pending > 0 || inFlight > 0) && clock.now() < until && !this.stopped) {
        await new Promise<void>((r) => clock.setTimeout(r, 50));
        if (pending <= 0) pending = await transport.depth(lane);
      }
    } finally {
      await consumer.stop();
    }
  }

  /** Stops listening to heartbeats. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopWatching?.();
    await this.rescuing;
    const sub = await this.listening?.catch(() => undefined);
    await sub?.unsubscribe().catch(() => {});
  }

  /** A live profile lane (not ours) serving `type` with `tags`, taken in turn when there are several. */
  private laneFor(type: string, tags: readonly string[]): string | undefined {
    const now = this.options.clock.now();
    const own = this.options.ownLane();
    const fits: string[] = [];
    for (const [lane, p] of this.profiles) {
      if (lane === own || now - p.seenAt > PROFILE_TTL_MS) continue;
      if (p.types.has(type) && tags.every((t) => p.tags.has(t))) fits.push(lane);
    }
    if (fits.length === 0) return undefined;
    this.next = (this.next + 1) % fits.length;
    return fits[this.next];
  }

  /** Listens to heartbeats from the first move on, and asks every worker for one (a ping). */
  private listen(): void {
    if (this.listening || this.stopped) return;
    const { transport } = this.options;
    this.listening = transport
      .subscribe(subjects.workerEvents, (m) => this.learn(m.body))
      .then(async (sub) => {
        const ping = encode({ v: 1, kind: "ping" }, transport.maxPayloadBytes, "control command");
        await transport.publish(subjects.control, ping).catch(() => {});
        return sub;
      })
      .catch((error: unknown) => {
        this.options.logger.warn({ err: describeThrown(error) }, "could not listen to worker heartbeats");
        this.listening = undefined;
        return undefined;
      });
  }

  private learn(body: Uint8Array): void {
    let lane: unknown;
    let types: unknown;
    let tags: unknown;
    try {
      const event = decodeWorkerEvent(body);
      if (event.kind !== "heartbeat") return;
      ({ lane, types, tags } = event.info);
    } catch {
      return; // not ours to judge: the registry logs malformed worker events
    }
    if (typeof lane !== "string" || !isWorkQueueOf(this.options.queue, lane)) return;
    if (!Array.isArray(types) || !types.every((t) => typeof t === "string")) return;
    const tagList = Array.isArray(tags) ? tags.filter((t): t is string => typeof t === "string") : [];
    const known = this.profiles.get(lane);
    const seenAt = this.options.clock.now();
    if (known) known.seenAt = seenAt;
    else if (this.profiles.size < MAX_PROFILES)
      this.profiles.set(lane, { types: new Set(types), tags: new Set(tagList), seenAt });
  }
}
