/**
 * JetStream's DeliveryRelease (transports/delivery-release.ts): a delivery's handle is its ack
 * subject; releasing it answers "-NAK" (with a delay, when asked) on that subject from whichever
 * process releases it, which JetStream accepts from any connection. Handles come from the wire (heartbeats, task events), so
 * only well-formed ack subjects of this namespace's streams are answered.
 */
import type { DeliveryRelease } from "../delivery-release.js";
import type { Consumer, Delivery } from "../transport.js";
import { NatsConsumer } from "./nats-consumer.js";
import { NatsDelivery, nakPayload, parseAckSubject } from "./nats-delivery.js";
import type { NatsNames } from "./nats-names.js";
import type { Outbox } from "./nats-outbox.js";

/** What the release needs from its transport. */
export interface ReleaseLink {
  readonly names: NatsNames;
  readonly ackWaitMs: number;
  /** How long a standing pull waits at the server (idlePullMs). */
  readonly idlePullMs: number;
  /** The connection's outbox, and a round trip that resolves once the server has what it sent. */
  live(): { outbox: Outbox; flush(): Promise<void> };
}

export class NatsDeliveryRelease implements DeliveryRelease {
  constructor(private readonly link: ReleaseLink) {}

  get redeliverAfterMs(): number {
    return this.link.ackWaitMs;
  }

  get requestsLingerMs(): number {
    return this.link.idlePullMs;
  }

  handleOf(delivery: Delivery): string | undefined {
    return delivery instanceof NatsDelivery ? delivery.msg.reply || undefined : undefined;
  }

  heldBy(consumer: Consumer): string[] {
    return consumer instanceof NatsConsumer ? consumer.unsettledHandles() : [];
  }

  async release(handles: readonly string[], options: { delayMs?: number } = {}): Promise<void> {
    const ours = handles.filter((h) => this.isOurs(h));
    if (ours.length === 0) return;
    const { outbox, flush } = this.link.live();
    const nak = nakPayload(options.delayMs);
    for (const handle of ours) outbox.send(handle, nak);
    outbox.flush();
    await flush();
  }

  forget(consumer: Consumer, handles: ReadonlySet<string>): void {
    if (consumer instanceof NatsConsumer) consumer.forget(handles);
  }

  /** An ack subject of a stream of this namespace (never any other subject). */
  private isOurs(handle: string): boolean {
    if (typeof handle !== "string" || handle.length > 512) return false;
    const info = parseAckSubject(handle);
    return info !== undefined && this.link.names.ownsStream(info.stream);
  }
}
