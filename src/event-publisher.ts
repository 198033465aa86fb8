/**
 * Task events leave in batches: every event published during one turn of the event loop goes out
 * as one message per subject (flushed once the turn's microtasks have run, or earlier when a batch
 * nears the transport's size limit). Callers still get a promise per event, resolved once its batch is
 * published, so "publish the outcome, then ack" keeps holding. One publisher per transport.
 */
import type { Transport } from "../transports/transport.js";
import type { ControlCommand, TaskEvent } from "./codec.js";
import { encodeJson, utf8 } from "./codec.js";
import { describeThrown, PayloadTooLargeError } from "./errors.js";
import { subjects } from "./names.js";
import { RecentOutcomes } from "./recent-outcomes.js";

/** A task event, with or without its version field (added when missing). */
export type TaskEventInput = Omit<TaskEvent, "v"> & { v?: 1 };

type ResyncCommand = Extract<ControlCommand, { kind: "resync" }>;

/** How far back outcomes are sent again after this process reconnects to the broker. */
const REPUBLISH_WINDOW_MS = 5 * 60_000;

interface Batch {
  /** JSON of each event; "started" events stay objects until the flush (most are folded away). */
  parts: Array<string | TaskEvent | undefined>;
  /** Index of each task's "started" part, dropped when its outcome joins the same batch. */
  started: Map<string, number>;
  bytes: number;
  /** Settled once the batch is published (or failed): one promise for all its events. */
  done: Promise<void>;
  settle(error?: unknown): void;
}

const BATCH_OVERHEAD = 64;
/** Room kept for a "started" event (ids and numbers only) before it is encoded. */
const STARTED_SIZE = 256;

export class TaskEventPublisher {
  private readonly batches = new Map<string, Batch>();
  private readonly chains = new Map<string, Promise<void>>();
  private scheduled = false;
  private readonly recent = new RecentOutcomes(() => Date.now());
  private readonly answered = new Set<string>();
  private wasDown = false;

  constructor(private readonly transport: Transport) {
    // After a reconnect, send the recent outcomes again: a client may have missed them meanwhile.
    transport.onStatus((e) => {
      if (e.state === "reconnecting") this.wasDown = true;
      else if (e.state === "connected" && this.wasDown) {
        this.wasDown = false;
        for (const [queue, events] of this.recent.since(REPUBLISH_WINDOW_MS)) this.resend(queue, events);
      }
    });
  }

  /** Answers a client's resync request (once per request, however many workers share this process). */
  answerResync(command: ResyncCommand): void {
    if (this.answered.has(command.requestId)) return;
    this.answered.add(command.requestId);
    if (this.answered.size > 1000) this.answered.delete(this.answered.values().next().value as string);
    const found = this.recent.find(command.queue, command.taskIds);
    if (found.length > 0) this.resend(command.queue, found);
  }

  /** Outcome events kept for resending. */
  get recentOutcomes(): number {
    return this.recent.size;
  }

  /** Queues an event for the task's queue; resolves with the event as sent, once published. */
  async publish(queue: string, event: TaskEventInput): Promise<TaskEvent> {
    const { sent, done } = this.queue(queue, event);
    await done;
    return sent;
  }

  /**
   * Queues an event: `sent` is the event as it will go out (an unsendable result turns it into a
   * failure), `done` settles when its batch is published. Throws if the event cannot be sent at all.
   */
  queue(queue: string, event: TaskEventInput): { sent: TaskEvent; done: Promise<void> } {
    const limit = this.transport.maxPayloadBytes - BATCH_OVERHEAD;
    let full = (event.v === 1 ? event : { ...event, v: 1 }) as TaskEvent;
    let json: string | undefined;
    let size = STARTED_SIZE;
    if (full.kind !== "started") {
      try {
        json = encodeJson(full, "task result");
        size = Buffer.byteLength(json);
        if (size > limit) throw new PayloadTooLargeError(size, limit, "task result");
      } catch (error) {
        if (event.kind !== "completed") throw error;
        // A result that cannot travel fails the task; retrying would produce the same result.
        full = {
          ...full,
          kind: "failed",
          result: undefined,
          error: `The handler's result cannot be sent: ${describeThrown(error)}`,
        };
        json = encodeJson(full, "task event");
        size = Buffer.byteLength(json);
      }
    }
    if (json !== undefined && full.kind !== "retrying" && !this.transport.reliableFanout) {
      this.recent.add(queue, full.taskId, json);
    }
    const subject = subjects.taskEvents(queue);
    let batch = this.batches.get(subject);
    if (batch && batch.bytes + size + 1 > limit) {
      this.flushSubject(subject);
      batch = undefined;
    }
    if (!batch) {
      batch = newBatch();
      this.batches.set(subject, batch);
    }
    if (full.kind === "started") batch.started.set(full.taskId, batch.parts.length);
    else if (full.kind !== "retrying") {
      // The outcome implies the start (with its duration): one event instead of two.
      const i = batch.started.get(full.taskId);
      if (i !== undefined) {
        batch.parts[i] = undefined;
        batch.started.delete(full.taskId);
      }
    }
    batch.parts.push(json ?? full);
    batch.bytes += size + 1;
    this.schedule();
    return { sent: full, done: batch.done };
  }

  /** Queues already-encoded events again (no caller waits for them). */
  private resend(queue: string, events: readonly string[]): void {
    const subject = subjects.taskEvents(queue);
    for (const json of events) {
      let batch = this.batches.get(subject);
      if (!batch) {
        batch = newBatch();
        this.batches.set(subject, batch);
      }
      batch.parts.push(json);
      batch.bytes += json.length + 1;
      if (batch.bytes > this.transport.maxPayloadBytes / 2) this.flushSubject(subject);
    }
    this.schedule();
  }

  /**
   * Flushes once the microtasks queued so far have run (a `process.nextTick` scheduled from a
   * microtask runs after the microtask queue drains): every outcome reached in this turn of the
   * event loop (the deliveries of one socket read and the handlers that finish without I/O) joins
   * the batch, and nothing waits for the next phase of the loop.
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.flushTick);
  }

  private readonly flushTick = (): void => {
    process.nextTick(this.flushAll);
  };

  private readonly flushAll = (): void => {
    this.scheduled = false;
    for (const subject of [...this.batches.keys()]) this.flushSubject(subject);
  };

  private flushSubject(subject: string): void {
    const batch = this.batches.get(subject);
    if (!batch) return;
    this.batches.delete(subject);
    const parts: string[] = [];
    for (const p of batch.parts)
      if (p !== undefined) parts.push(typeof p === "string" ? p : JSON.stringify(p));
    const body =
      parts.length === 1
        ? utf8(parts[0] as string)
        : utf8(`{"v":1,"kind":"batch","events":[${parts.join(",")}]}`);
    // In order per subject: a batch waits for the one before it (only when that one is still
    // being published, e.g. a broker applying backpressure).
    const previous = this.chains.get(subject);
    const published =
      previous === undefined
        ? this.publishNow(subject, body)
        : previous.then(() => this.transport.publish(subject, body));
    const next = published.then(
      () => batch.settle(),
      (error: unknown) => batch.settle(error),
    );
    this.chains.set(subject, next);
    void next.then(() => {
      if (this.chains.get(subject) === next) this.chains.delete(subject);
    });
  }

  private publishNow(subject: string, body: Uint8Array): Promise<void> {
    try {
      return this.transport.publish(subject, body);
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

function newBatch(): Batch {
  let settle!: (error?: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (error) => (error === undefined ? resolve() : reject(error));
  });
  done.catch(() => {}); // a failure is reported to whoever awaits it; nobody has to
  return { parts: [], started: new Map(), bytes: 0, done, settle };
}

const publishers = new WeakMap<Transport, TaskEventPublisher>();

/** The one publisher of a transport (shared by every worker and queue on it). */
export function eventPublisherFor(transport: Transport): TaskEventPublisher {
  let publisher = publishers.get(transport);
  if (!publisher) {
    publisher = new TaskEventPublisher(transport);
    publishers.set(transport, publisher);
  }
  return publisher;
}
