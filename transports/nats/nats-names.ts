/**
 * How logical names map onto NATS. Everything lives under the namespace's first subject token,
 * split in two disjoint trees so a fan-out subject can never land in a work queue stream:
 *
 *   <ns>.work.<queue>.p<level>   one subject per priority level of a work queue (JetStream)
 *   <ns>.fan.<subject>           fan-out events (core NATS)
 *
 * One stream per queue (work-queue retention) holds its level subjects; one durable pull
 * consumer per level (`fa-p0` … `fa-p3`) filters one of them. Stream names cannot contain dots,
 * so they are the queue's tokens joined with "_" plus a short hash of the exact name (which
 * keeps "a.b" and "a_b" apart).
 */
import { priorityLevel } from "../transport.js";

/** Lowest TaskPriority value of each level: LOW, NORMAL, HIGH, CRITICAL. */
export const PRIORITY_LEVELS: readonly number[] = [0, 5, 10, 20];

/** Level indices from the highest to the lowest. */
export const LEVELS_HIGH_FIRST: readonly number[] = PRIORITY_LEVELS.map((_, i) => i).reverse();

export function levelOf(priority: number): number {
  return priorityLevel(priority, PRIORITY_LEVELS);
}

export function consumerNameOf(level: number): string {
  return `fa-p${level}`;
}

/** FNV-1a, 32 bits, as 8 hex digits: a short stable fingerprint of a name. */
export function fingerprint(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

export class NatsNames {
  readonly workPrefix: string;
  readonly fanPrefix: string;

  constructor(readonly namespace: string) {
    this.workPrefix = `${namespace}.work.`;
    this.fanPrefix = `${namespace}.fan.`;
  }

  /** The subject of one priority level of a work queue. */
  workSubject(queue: string, level: number): string {
    return `${this.workPrefix}${queue}.p${level}`;
  }

  /** Every subject of the queue's stream, by level index. */
  workSubjects(queue: string): string[] {
    return PRIORITY_LEVELS.map((_, level) => this.workSubject(queue, level));
  }

  /** The stream holding the queue's messages. */
  streamName(queue: string): string {
    return `${this.namespace}_${queue.replaceAll(".", "_")}_${fingerprint(queue)}`;
  }

  /** Whether a stream name is one this namespace creates. */
  ownsStream(stream: string): boolean {
    return stream.startsWith(`${this.namespace}_`);
  }

  /** Matches every work subject of the namespace (to find its streams). */
  get workWildcard(): string {
    return `${this.workPrefix}>`;
  }

  fanSubject(subject: string): string {
    return `${this.fanPrefix}${subject}`;
  }

  /** The logical subject of a fan-out message received on `natsSubject`. */
  logicalFanSubject(natsSubject: string): string {
    return natsSubject.slice(this.fanPrefix.length);
  }
}
