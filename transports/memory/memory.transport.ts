import { type Clock, systemClock } from "../../src/clock.js";
import { validateKeys } from "../../src/config.js";
import { PayloadTooLargeError, StateError } from "../../src/errors.js";
import { checked, durationIn, intIn } from "../../src/limits.js";
import { DEAD_LETTER_AT_HEADER, DEAD_LETTER_DELIVERIES_HEADER, type DeadLetters } from "../dead-letters.js";
import { DedupWindow } from "../dedup-window.js";
import type { EntityMailbox } from "../entity-mailbox.js";
import { type EventLogOptions, resolveEventLogOptions } from "../event-log.js";
import { assertNamespace } from "../shared-options.js";
import type { StateStore } from "../state-store.js";
import {
  assertLogicalName,
  type Bytes,
  type ConsumeOptions,
  type Consumer,
  DEAD_LETTER_REASON_HEADER,
  type DeliveryHandler,
  deadLetterQueueOf,
  type EnqueueOptions,
  type FanoutMessage,
  type Subscription,
  type Transport,
  type TransportState,
  type TransportStatusEvent,
} from "../transport.js";
import { type MemoryBroker, MemoryConsumer, type MemoryQueue, type Message } from "./memory-consumer.js";
import { MemoryDeadLetters } from "./memory-dead-letters.js";
import { MemoryEntityMailbox } from "./memory-entity-mailbox.js";
import { MemoryEventLog } from "./memory-event-log.js";
import { MemoryStateStore } from "./memory-state-store.js";
import { before, PriorityHeap } from "./priority-heap.js";

export interface InMemoryTransportOptions {
  /** Timers for delayed delivery; inject a SimulatedClock in tests. */
  clock?: Clock;
  /** Same default as NATS' max_payload, so what works here works there. */
  maxPayloadBytes?: number;
  /** How long a dedupId is remembered (JetStream's default duplicate window is 2 minutes). */
  dedupWindowMs?: number;
  /** At most this many dedupIds are remembered (the oldest are forgotten first). Default 100,000. */
  dedupMaxEntries?: number;
  /** Dead-letter queues keep at most this many messages; later ones are dropped and counted. */
  maxDeadLetters?: number;
  /**
   * Checked by the same rule as on the brokers (transports/shared-options.ts), so a namespace that
   * works here works there; one process has nothing to share, so nothing else depends on it.
   */
  namespace?: string;
  /** Retention of the event log (EventBus): by default 100,000 events and 7 days. */
  events?: EventLogOptions;
}

const OPTION_KEYS = [
  "clock",
  "maxPayloadBytes",
  "dedupWindowMs",
  "dedupMaxEntries",
  "maxDeadLetters",
  "namespace",
  "events",
];

/**
 * The embedded transport: one process, no broker, the same semantics as the brokers (priorities,
 * delayed redelivery, unsettled deliveries returned when their consumer stops, a byte limit).
 */
export class InMemoryTransport implements Transport, MemoryBroker {
  readonly kind = "memory";
  /** One process: a message's delivery count is never lost, so a first delivery is a first run. */
  readonly exactDeliveryCounts: boolean = true;
  readonly namespace: string;
  readonly maxPayloadBytes: number;
  /** Dead letters dropped because a dead-letter queue was full. */
  droppedDeadLetters = 0;

  private readonly clock: Clock;
  private readonly dedup: DedupWindow;
  private readonly maxDeadLetters: number;
  private readonly queues = new Map<string, MemoryQueue>();
  private readonly exactSubs = new Map<string, Set<(m: FanoutMessage) => void>>();
  private readonly prefixSubs = new Map<string, Set<(m: FanoutMessage) => void>>();
  private readonly listeners = new Set<(e: TransportStatusEvent) => void>();
  private readonly consumers = new Set<MemoryConsumer>();
  private readonly dropFilters = new Set<(m: FanoutMessage) => boolean>();
  private seq = 0;
  private dispatchScheduled = false;
  private dirty = new Set<MemoryQueue>();
  private _state: TransportState = "idle";
  private mailbox?: MemoryEntityMailbox;
  private store?: MemoryStateStore;
  private events?: MemoryEventLog;
  private readonly eventOptions?: EventLogOptions;
  private deadLetterStore?: MemoryDeadLetters;

  constructor(options: InMemoryTransportOptions = {}) {
    validateKeys("InMemoryTransportOptions", options, OPTION_KEYS);
    this.namespace = options.namespace ?? "fastagentic";
    assertNamespace(this.namespace, "in-memory transport");
    this.clock = options.clock ?? systemClock;
    const what = "InMemoryTransportOptions";
    this.maxPayloadBytes = checked(
      `${what}.maxPayloadBytes`,
      options.maxPayloadBytes ?? 1024 * 1024,
      intIn(1024, 1024 * 1024 * 1024),
    );
    const windowMs = checked(`${what}.dedupWindowMs`, options.dedupWindowMs ?? 120_000, durationIn(0));
    const entries = checked(
      `${what}.dedupMaxEntries`,
      options.dedupMaxEntries ?? 100_000,
      intIn(1, 10_000_000),
    );
    const clock = this.clock;
    this.dedup = new DedupWindow(windowMs, entries, () => clock.now());
    this.maxDeadLetters = checked(
      `${what}.maxDeadLetters`,
      options.maxDeadLetters ?? 10_000,
      intIn(0, 10_000_000),
    );
    this.eventOptions = options.events;
    if (options.events !== undefined) resolveEventLogOptions(options.events, 100_000);
  }

  eventLog(): MemoryEventLog {
    this.events ??= new MemoryEventLog(this.clock, resolveEventLogOptions(this.eventOptions, 100_000));
    return this.events;
  }

  /** Fan-out always arrives here, unless a test injected a fault with dropPublishes(). */
  get reliableFanout(): boolean {
    return this.dropFilters.size === 0;
  }

  get state(): TransportState {
    return this._state;
  }

  async connect(): Promise<void> {
    if (this._state === "closed") {
      throw new StateError("This InMemoryTransport was closed; create a new one.");
    }
    if (this._state !== "connected") this.setState("connected");
  }

  async close(): Promise<void> {
    if (this._state === "closed") return;
    for (const consumer of [...this.consumers]) await consumer.stop();
    this.mailbox?.close();
    this.exactSubs.clear();
    this.prefixSubs.clear();
    this.events?.close();
    this.setState("closed");
  }

  onStatus(listener: (event: TransportStatusEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async enqueue(queue: string, body: Bytes, options: EnqueueOptions): Promise<void> {
    this.assertOpen();
    assertLogicalName(queue, "queue name");
    this.assertSize(body);
    if (options.dedupId !== undefined && this.dedup.add(options.dedupId) === undefined) return;
    const message: Message = {
      seq: ++this.seq,
      priority: options.priority,
      body, // taken as is: the contract says callers do not modify a body after sending it
      headers: options.headers === undefined ? NO_HEADERS : { ...options.headers },
      deliveries: 0,
    };
    this.put(this.queue(queue), message, options.delayMs ?? 0);
  }

  async consume(
    queues: readonly string[],
    onDelivery: DeliveryHandler,
    options: ConsumeOptions,
  ): Promise<Consumer> {
    this.assertOpen();
    for (const q of queues) assertLogicalName(q, "queue name");
    const consumer = new MemoryConsumer(
      this,
      queues.map((q) => this.queue(q)),
      onDelivery,
      options.concurrency,
    );
    this.consumers.add(consumer);
    for (const q of consumer.queues) {
      q.consumers.add(consumer);
      this.markDirty(q);
    }
    return consumer;
  }

  async depth(queue: string): Promise<number> {
    assertLogicalName(queue, "queue name");
    const q = this.queues.get(queue);
    return q ? q.heap.size + q.delayed : 0;
  }

  async publish(subject: string, body: Bytes): Promise<void> {
    this.assertOpen();
    assertLogicalName(subject, "subject");
    this.assertSize(body);
    const message: FanoutMessage = { subject, body };
    for (const drop of this.dropFilters) if (drop(message)) return;
    const targets: Array<(m: FanoutMessage) => void> = [];
    const exact = this.exactSubs.get(subject);
    if (exact) targets.push(...exact);
    if (this.prefixSubs.size > 0) {
      for (const [prefix, set] of this.prefixSubs) {
        if (subject.startsWith(prefix)) targets.push(...set);
      }
    }
    if (targets.length === 0) return;
    queueMicrotask(() => {
      for (const target of targets) safely(() => target(message));
    });
  }

  async subscribe(subject: string, onMessage: (message: FanoutMessage) => void): Promise<Subscription> {
    this.assertOpen();
    assertLogicalName(subject, "subject", true);
    const wildcard = subject.endsWith(".>");
    const key = wildcard ? subject.slice(0, -1) : subject;
    const map = wildcard ? this.prefixSubs : this.exactSubs;
    let set = map.get(key);
    if (!set) {
      set = new Set();
      map.set(key, set);
    }
    set.add(onMessage);
    return {
      unsubscribe: async () => {
        set.delete(onMessage);
        if (set.size === 0) map.delete(key);
      },
    };
  }

  /** Entity mailboxes in this process (one per transport, shared by everything on it). */
  entityMailbox(): EntityMailbox {
    this.mailbox ??= new MemoryEntityMailbox({ clock: this.clock, maxPayloadBytes: this.maxPayloadBytes });
    return this.mailbox;
  }

  /** Entity state in this process (one store per transport; it outlives close(), like a database). */
  stateStore(): StateStore {
    this.store ??= new MemoryStateStore();
    return this.store;
  }

  /** Dead letters: list, inspect, retry, delete, purge (transports/dead-letters.ts). */
  deadLetters(): DeadLetters {
    this.deadLetterStore ??= new MemoryDeadLetters({
      existingQueue: (name) => this.queues.get(name),
      queueNames: () => this.queues.keys(),
      enqueueNew: (queue, body, priority, headers) => {
        const message: Message = { seq: ++this.seq, priority, body, headers, deliveries: 0 };
        this.put(this.queue(queue), message, 0);
      },
      assertOpen: () => this.assertOpen(),
    });
    return this.deadLetterStore;
  }

  /** Messages waiting in `queue` by priority value (delayed ones are not counted). */
  async depthByPriority(queue: string): Promise<Record<number, number>> {
    assertLogicalName(queue, "queue name");
    const counts: Record<number, number> = { 0: 0, 5: 0, 10: 0, 20: 0 };
    for (const m of this.queues.get(queue)?.heap.toArray() ?? [])
      counts[m.priority] = (counts[m.priority] ?? 0) + 1;
    return counts;
  }

  /**
   * Fault injection for tests (like a network partition): fan-out messages for which `filter`
   * returns true are silently dropped until the returned function is called.
   */
  dropPublishes(filter: (message: FanoutMessage) => boolean): () => void {
    this.dropFilters.add(filter);
    return () => this.dropFilters.delete(filter);
  }

  // ---- internals used by MemoryConsumer ---------------------------------------------------------

  /** @internal */
  put(queue: MemoryQueue, message: Message, delayMs: number): void {
    if (delayMs > 0) {
      queue.delayed++;
      this.clock.setTimeout(() => {
        queue.delayed--;
        if (this._state !== "closed") this.put(queue, message, 0);
      }, delayMs);
      return;
    }
    queue.heap.push(message);
    this.markDirty(queue);
  }

  /** @internal */
  requeue(queue: MemoryQueue, message: Message, delayMs = 0): void {
    this.put(queue, message, delayMs);
  }

  /** @internal */
  deadLetter(queue: MemoryQueue, message: Message, reason: string): void {
    const dlq = this.queue(deadLetterQueueOf(queue.name));
    if (dlq.heap.size + dlq.delayed >= this.maxDeadLetters) {
      this.droppedDeadLetters++;
      return;
    }
    message.headers = {
      ...message.headers,
      [DEAD_LETTER_REASON_HEADER]: reason,
      [DEAD_LETTER_DELIVERIES_HEADER]: String(message.deliveries),
      [DEAD_LETTER_AT_HEADER]: String(this.clock.now()),
    };
    message.deliveries = 0;
    message.seq = ++this.seq; // dead letters are addressed, and listed, in the order they died
    this.put(dlq, message, 0);
  }

  /** @internal */
  markDirty(queue: MemoryQueue): void {
    this.dirty.add(queue);
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    setImmediate(() => this.dispatch());
  }

  /** @internal */
  forget(consumer: MemoryConsumer): void {
    this.consumers.delete(consumer);
    for (const q of consumer.queues) q.consumers.delete(consumer);
  }

  private dispatch(): void {
    this.dispatchScheduled = false;
    const dirty = [...this.dirty];
    this.dirty.clear();
    const consumers = new Set<MemoryConsumer>();
    for (const q of dirty) for (const c of q.consumers) consumers.add(c);
    // Round-robin: one delivery per consumer per pass, so competing consumers share the work.
    let progress = true;
    while (progress) {
      progress = false;
      for (const consumer of consumers) {
        if (!consumer.hasCapacity()) {
          consumers.delete(consumer);
          continue;
        }
        const source = bestQueue(consumer.queues);
        if (!source) {
          consumers.delete(consumer);
          continue;
        }
        const message = source.heap.pop() as Message;
        consumer.deliver(source, message);
        progress = true;
      }
    }
  }

  private queue(name: string): MemoryQueue {
    let q = this.queues.get(name);
    if (!q) {
      q = { name, heap: new PriorityHeap<Message>(), delayed: 0, consumers: new Set() };
      this.queues.set(name, q);
    }
    return q;
  }

  private assertOpen(): void {
    if (this._state === "closed") {
      throw new StateError("This InMemoryTransport is closed; nothing can be sent or received on it.");
    }
    if (this._state === "idle") this.setState("connected");
  }

  private assertSize(body: Bytes): void {
    if (body.byteLength > this.maxPayloadBytes) {
      throw new PayloadTooLargeError(body.byteLength, this.maxPayloadBytes, "message");
    }
  }

  private setState(state: TransportState): void {
    this._state = state;
    for (const l of this.listeners) safely(() => l({ state }));
  }
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

function bestQueue(queues: readonly MemoryQueue[]): MemoryQueue | undefined {
  let best: MemoryQueue | undefined;
  let top: Message | undefined;
  for (const q of queues) {
    const head = q.heap.peek();
    if (head && (!top || before(head, top))) {
      best = q;
      top = head;
    }
  }
  return best;
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
