/**
 * Task events leave in batches: every event published during one turn of the event loop goes out
 * as one message per destination (flushed once the turn's microtasks have run, or earlier when a
 * batch nears the transport's size limit). Callers still get a promise per event, resolved once its
 * batch is published, so "publish the outcome, then ack" keeps holding. One publisher per transport.
 *
 * A destination is the task queue's event subject, or, when the task names its client's inbox
 * (`replyTo`, on transports that have inboxes), that inbox: the events go to the one client
 * that tracks the task, not to every client of the queue (the others ignore them anyway).
 */
import type { PublishOptions, Transport } from "../transports/transport.js";
import type { ControlCommand, TaskEnvelope, TaskEvent } from "./codec.js";
import { encodeJson, utf8 } from "./codec.js";
import { cutText, describeThrown, PayloadTooLargeError } from "./errors.js";
import { subjects } from "./names.js";
import { RecentOutcomes } from "./recent-outcomes.js";

/** A task event, with or without its version field (added when missing). */
export type TaskEventInput = Omit<TaskEvent, "v"> & { v?: 1 };

/** Where a task's events go: its queue's subject, or its client's inbox when it names one. */
export type EventRoute = Pick<TaskEnvelope, "queue" | "replyTo">;

type ResyncCommand = Extract<ControlCommand, { kind: "resync" }>;

/** How far back outcomes are sent again after this process reconnects to the broker. */
const REPUBLISH_WINDOW_MS = 5 * 60_000;

interface Batch {
  subject: string;
  /** `{ inbox }` when the batch goes to one client's inbox. */
  options: PublishOptions | undefined;
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

  /** Queues an event of a task; resolves with the event as sent, once published. */
  async publish(task: EventRoute, event: TaskEventInput): Promise<TaskEvent> {
    const { sent, done } = this.queue(task, event);
    await done;
    return sent;
  }

  /**
   * Queues an event: `sent` is the event as it will go out (an unsendable result turns it into a
   * failure), `done` settles when its batch is published. Throws if the event cannot be sent at all.
   */
  queue(task: EventRoute, event: TaskEventInput): { sent: TaskEvent; done: Promise<void> } {
    const queue = task.queue;
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
        if (full.kind === "completed") {
          // A result that cannot travel fails the task; retrying would produce the same result.
          full = {
            ...full,
            kind: "failed",
            result: undefined,
            error: `The handler's result cannot be sent: ${describeThrown(error)}`,
          };
        }
        // An error text too long for one message is cut (with a marker) until the event fits: the
        // outcome must reach its client, or the delivery would come back as a poison task.
        [full, json] = fitErrorText(full, limit);
        size = Buffer.byteLength(json);
      }
    }
    if (json !== undefined && full.kind !== "retrying" && !this.transport.reliableFanout) {
      this.recent.add(queue, full.taskId, json);
    }
    const subject = subjects.taskEvents(queue);
    // One batch per inbox, else per subject; inbox keys start with a character no subject has, so a
    // replyTo (it comes off the wire) never lands in a subject's batch.
    const key = task.replyTo === undefined ? subject : `\u0000${task.replyTo}`;
    let batch = this.batches.get(key);
    if (batch && batch.bytes + size + 1 > limit) {
      this.flush(key);
      batch = undefined;
    }
    if (!batch) {
      batch = newBatch(subject, task.replyTo);
      this.batches.set(key, batch);
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
        batch = newBatch(subject, undefined);
        this.batches.set(subject, batch);
      }
      batch.parts.push(json);
      batch.bytes += json.length + 1;
      if (batch.bytes > this.transport.maxPayloadBytes / 2) this.flush(subject);
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
    for (const key of [...this.batches.keys()]) this.flush(key);
  };

  /** Publishes the batch of a destination (`key`: its subject or inbox). */
  private flush(key: string): void {
    const batch = this.batches.get(key);
    if (!batch) return;
    this.batches.delete(key);
    const parts: string[] = [];
    for (const p of batch.parts)
      if (p !== undefined) parts.push(typeof p === "string" ? p : JSON.stringify(p));
    const body =
      parts.length === 1
        ? utf8(parts[0] as string)
        : utf8(`{"v":1,"kind":"batch","events":[${parts.join(",")}]}`);
    // In order per destination: a batch waits for the one before it (only when that one is still
    // being published, e.g. a broker applying backpressure).
    const previous = this.chains.get(key);
    const published =
      previous === undefined
        ? this.publishNow(batch, body)
        : previous.then(() => this.transport.publish(batch.subject, body, batch.options));
    const next = published.then(
      () => batch.settle(),
      (error: unknown) => batch.settle(error),
    );
    this.chains.set(key, next);
    void next.then(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  private publishNow(batch: Batch, body: Uint8Array): Promise<void> {
    try {
      return this.transport.publish(batch.subject, body, batch.options);
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/** The event, with its error text cut as much as it takes for its JSON to fit in `limit` bytes. */
function fitErrorText(event: TaskEvent, limit: number): [TaskEvent, string] {
  const original = event.error ?? "";
  let keep = original.length;
  for (;;) {
    const fitted = keep === original.length ? event : { ...event, error: cutText(original, keep) };
    const json = encodeJson(fitted, "task event");
    const size = Buffer.byteLength(json);
    if (size <= limit) return [fitted, json];
    if (keep === 0) throw new PayloadTooLargeError(size, limit, "task event");
    keep = Math.floor(keep / 2);
  }
}

function newBatch(subject: string, inbox: string | undefined): Batch {
  let settle!: (error?: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (error) => (error === undefined ? resolve() : reject(error));
  });
  done.catch(() => {}); // a failure is reported to whoever awaits it; nobody has to
  const options = inbox === undefined ? undefined : { inbox };
  return { subject, options, parts: [], started: new Map(), bytes: 0, done, settle };
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
