/** The consumer side of the in-memory transport: unsettled deliveries and their settlement. */
import type { Bytes, Consumer, Delivery, DeliveryHandler } from "../transport.js";
import type { PriorityHeap } from "./priority-heap.js";

/** The operations of the transport that consumers and deliveries call back into. */
export interface MemoryBroker {
  requeue(queue: MemoryQueue, message: Message, delayMs?: number): void;
  deadLetter(queue: MemoryQueue, message: Message, reason: string): void;
  markDirty(queue: MemoryQueue): void;
  forget(consumer: MemoryConsumer): void;
}

export interface Message {
  seq: number;
  priority: number;
  body: Bytes;
  headers: Record<string, string>;
  deliveries: number;
}

export interface MemoryQueue {
  name: string;
  heap: PriorityHeap<Message>;
  delayed: number;
  consumers: Set<MemoryConsumer>;
}

export class MemoryConsumer implements Consumer {
  private readonly unsettled = new Set<MemoryDelivery>();
  private stopped = false;

  constructor(
    readonly transport: MemoryBroker,
    readonly queues: MemoryQueue[],
    private readonly onDelivery: DeliveryHandler,
    private concurrency: number,
  ) {}

  hasCapacity(): boolean {
    return !this.stopped && this.unsettled.size < this.concurrency;
  }

  deliver(queue: MemoryQueue, message: Message): void {
    message.deliveries++;
    const delivery = new MemoryDelivery(this, queue, message);
    this.unsettled.add(delivery);
    try {
      this.onDelivery(delivery);
    } catch {
      // A handler that throws synchronously has not processed the message: deliver it again.
      void delivery.nack();
    }
  }

  settle(delivery: MemoryDelivery): boolean {
    if (!this.unsettled.delete(delivery)) return false;
    if (!this.stopped) for (const q of this.queues) this.transport.markDirty(q);
    return true;
  }

  setConcurrency(concurrency: number): void {
    this.concurrency = Math.max(0, concurrency);
    if (!this.stopped) for (const q of this.queues) this.transport.markDirty(q);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.transport.forget(this);
    const returned = [...this.unsettled];
    this.unsettled.clear();
    for (const d of returned) this.transport.requeue(d.source, d.message);
  }
}

export class MemoryDelivery implements Delivery {
  readonly queue: string;
  readonly body: Bytes;
  readonly deliveryCount: number;
  readonly priority: number;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    private readonly consumer: MemoryConsumer,
    readonly source: MemoryQueue,
    readonly message: Message,
  ) {
    this.queue = source.name;
    this.body = message.body;
    this.deliveryCount = message.deliveries;
    this.priority = message.priority;
    this.headers = message.headers;
  }

  async ack(): Promise<void> {
    this.consumer.settle(this);
  }

  async nack(options: { delayMs?: number } = {}): Promise<void> {
    if (this.consumer.settle(this)) {
      this.consumer.transport.requeue(this.source, this.message, options.delayMs ?? 0);
    }
  }

  async inProgress(): Promise<void> {}

  async deadLetter(reason: string): Promise<void> {
    if (this.consumer.settle(this)) {
      this.consumer.transport.deadLetter(this.source, this.message, reason);
    }
  }
}
