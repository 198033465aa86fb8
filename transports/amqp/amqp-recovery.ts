/**
 * How an AMQP consumer comes back after its channel closed or a reconcile failed: once the
 * connection is up, it declares its queues again (the broker may have lost them) and consumes,
 * retrying with a back-off that doubles from 100 ms up to `maxReconnectDelayMs`. Shared by the
 * classic consumer (amqp-consumer.ts) and the quorum one (amqp-level-consumer.ts).
 */
import type { ConsumerHost } from "./amqp-consumer.js";

export class ConsumerRecovery {
  private timer?: ReturnType<typeof setTimeout>;
  private delayMs = 0;

  constructor(
    private readonly host: ConsumerHost,
    private readonly queues: readonly string[],
    /** Declares the queues and consumes again (the consumer's `start`). */
    private readonly resume: () => Promise<void>,
    private readonly stopped: () => boolean,
  ) {}

  /** Recovers after the current back-off, unless stopped or already scheduled. */
  later(error?: Error): void {
    if (this.stopped() || this.timer) return;
    if (error)
      this.host.logger.warn({ err: error.message, queues: this.queues }, "AMQP consumer recovery failed");
    const delay = this.delayMs;
    this.delayMs = Math.min(Math.max(100, delay * 2), this.host.maxReconnectDelayMs);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.recover().then(
        () => {
          this.delayMs = 0;
        },
        (e: Error) => this.later(e),
      );
    }, delay);
  }

  /** Drops a scheduled recovery (the consumer stops). */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async recover(): Promise<void> {
    await this.host.connection.whenUp();
    if (this.stopped()) return;
    await this.resume();
  }
}
