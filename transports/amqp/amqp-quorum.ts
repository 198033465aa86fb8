/**
 * What `queueType: "quorum"` declares (see amqp-names.ts for the names). Quorum queues are
 * replicated (Raft) across the nodes of a RabbitMQ cluster, but on 3.10 have no per-message
 * priority, no global prefetch and no `x-queue-version`; so:
 *
 *   work queue     <ns>.<queue>:p<level>   one quorum queue per priority level (0 … 3); consumed
 *                                          highest level first (amqp-level-consumer.ts)
 *   dead letters   <ns>.dead.<queue>       stays a classic queue (with per-message priority): the
 *                                          dead-letter API scans it with basic.get and gives back what
 *                                          it looked at, which a classic queue puts back in place; a
 *                                          quorum queue (3.10) applies returns later, through its log,
 *                                          and does not keep their order (measured: a scan that gave
 *                                          back a1,a2 of a1…a5 then read a3,a4,a5,a1,a2), so listing
 *                                          oldest first and paging would break. A dead letter is on
 *                                          one node (mirror it with a policy if it must survive one).
 *   wait queues    <ns>:wait.<ms>ms        quorum queues with a TTL, dead-lettering back to the level
 *                                          queue the message was published to
 *
 * `x-delivery-limit` bounds how often the broker hands out one message whose consumer died
 * holding it (the transport's own retries are new messages: they do not count); past it, the
 * broker dead-letters the message to `dead.<queue>` itself. Dead-lettering is `at-least-once`
 * (the default, at-most-once, may lose the message on a leader change), which RabbitMQ allows only
 * with `x-overflow: reject-publish`; no length limit is set, so that never refuses a publish.
 */
import { ConfigError } from "../../src/errors.js";
import { showValue } from "../../src/limits.js";

export type AmqpQueueType = "classic" | "quorum";

/**
 * The queue type and delivery limit of AmqpTransportOptions, from the options or the URL's
 * `?queueType=` / `?deliveryLimit=` (given once, or the same in both).
 */
export function queueTypeOf(
  query: URLSearchParams,
  queueTypeOption: AmqpQueueType | undefined,
  deliveryLimitOption: number | undefined,
): { queueType: AmqpQueueType; deliveryLimit: number } {
  const fromUrl = query.get("queueType") ?? undefined;
  if (fromUrl !== undefined && queueTypeOption !== undefined && fromUrl !== queueTypeOption) {
    throw new ConfigError(
      `The AMQP URL says queueType "${fromUrl}" but the options say "${queueTypeOption}"; give it once.`,
    );
  }
  const queueType = fromUrl ?? queueTypeOption ?? "classic";
  if (queueType !== "classic" && queueType !== "quorum") {
    throw new ConfigError(
      `AmqpTransportOptions.queueType must be "classic" or "quorum"; got ${showValue(queueType)}.`,
    );
  }
  const limitParam = query.get("deliveryLimit");
  const deliveryLimit = limitParam !== null ? Number(limitParam) : (deliveryLimitOption ?? 20);
  if (!Number.isInteger(deliveryLimit) || deliveryLimit < 1 || deliveryLimit > 1000) {
    throw new ConfigError(
      `AmqpTransportOptions.deliveryLimit must be an integer from 1 to 1000; got ${showValue(limitParam ?? deliveryLimitOption)}.`,
    );
  }
  if (queueType === "classic" && (limitParam !== null || deliveryLimitOption !== undefined)) {
    throw new ConfigError(
      'AmqpTransportOptions.deliveryLimit applies to quorum queues only; set queueType: "quorum" or leave it out.',
    );
  }
  return { queueType, deliveryLimit };
}

/** The RabbitMQ queue of one priority level of a quorum work queue. */
export function levelQueueName(queue: string, level: number): string {
  return `${queue}:p${level}`;
}

/** The arguments of a quorum work queue (`deadLetters`: its dead-letter queue, a classic one). */
export function quorumQueueArguments(deadLetters: string, deliveryLimit: number): Record<string, unknown> {
  return {
    "x-queue-type": "quorum",
    "x-delivery-limit": deliveryLimit,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": deadLetters,
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
  };
}

/** The arguments of a quorum wait queue: expired messages go back under the key they were published with. */
export function quorumWaitArguments(ttlMs: number, expiresMs: number): Record<string, unknown> {
  return {
    "x-queue-type": "quorum",
    "x-message-ttl": ttlMs,
    "x-dead-letter-exchange": "",
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
    "x-expires": expiresMs,
  };
}

/** The header in which a quorum queue counts the returns of a message (its consumer died holding it). */
export const H_QUORUM_DELIVERY_COUNT = "x-delivery-count";

/** Returns of a message so far, as its quorum queue counted them (0 on classic queues). */
export function quorumReturns(headers: Record<string, unknown> | undefined): number {
  const n = Number(headers?.[H_QUORUM_DELIVERY_COUNT] ?? 0);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}
