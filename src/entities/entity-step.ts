/**
 * One batch of events for one entity, applied in memory: the pure part of the holder's work. It
 * takes the entity as last stored (state, record, revision), the batch in mailbox order, and gives
 * the record to write (by compare-and-set), the answer for each event, and what to do once the
 * write succeeded. Nothing here touches the store or the network, so it is tested alone.
 *
 * Per event: a message whose mailbox sequence is at or below the last one taken (record.sq, NATS)
 * is a redelivery of one already taken (the holder takes an id's messages in mailbox order) and is
 * not applied again, however many events came since (a work-queue stream can hand out again, after
 * a leader change, a message whose ack it lost); a timer whose token is no longer in the record is
 * skipped (cancelled or fired); an
 * event id the record remembers is a duplicate (answered with the current snapshot, not applied);
 * otherwise the logic applies it (or rejects it, or fails on it: both remembered, state unchanged).
 */
import { createHash } from "node:crypto";
import type { AnyEntityDefinition } from "./define-entity.js";
import type { Effect, EntitySnapshot } from "./entity-logic.js";
import type { EntityMessage } from "./entity-messages.js";
import type { EntityRecord, OutboxEntry } from "./entity-record.js";

export interface Loaded {
  state: unknown;
  record: EntityRecord;
  /** The store's revision of `record`; null: never stored. */
  revision: number | null;
  /** Outbox entries not known to be sent yet. */
  unsent: OutboxEntry[];
  /** Effects of entering the initial state, for the first write of a new entity. */
  initialEffects?: Effect[];
}

export type Outcome =
  | { kind: "ok"; snapshot: EntitySnapshot; dup?: true }
  | { kind: "error"; code: string; message: string; eventType: string; state?: unknown; reason?: string }
  /** A timer that was cancelled or already fired: acknowledge, nothing else. */
  | { kind: "skip" }
  /** A timer that came early (a broker's delay buckets are coarse): schedule it again for the rest. */
  | { kind: "early"; delayMs: number };

export interface Plan {
  /** Something to write (false: only duplicates and stale timers). */
  changed: boolean;
  next: Loaded;
  outcomes: Outcome[];
  /** Local side effects, run after the write. */
  runs: Array<() => void>;
  /** New durable timers among the outbox entries: sent before the write. */
  timers: boolean;
}

/** How early a timer may fire (clock skew between processes, bucket rounding) before it is rescheduled. */
const EARLY_TOLERANCE_MS = 25;

export function planBatch(
  def: AnyEntityDefinition,
  id: string,
  loaded: Loaded,
  messages: readonly EntityMessage[],
  now: number,
  /** Each message's mailbox sequence (MailboxMessage.seq), where the broker numbers them. */
  seqs?: readonly (number | undefined)[],
): Plan {
  const logic = def.logic;
  const record = loaded.record;
  let state = loaded.state;
  let n = record.n;
  let sq = record.sq;
  const ids = [...record.ids];
  const tm = { ...record.tm };
  const added: OutboxEntry[] = [];
  const runs: Array<() => void> = [];
  const outcomes: Outcome[] = [];
  let changed = loaded.revision === null || record.mv !== def.options.version;
  let timers = false;
  const snapshotOf = (): EntitySnapshot => {
    const view = logic.view(state);
    return { id, value: view.value, context: view.context, status: view.status, version: n };
  };

  const effects = (list: readonly Effect[]): void => {
    let i = 0;
    for (const effect of list) {
      i++;
      switch (effect.k) {
        case "timer": {
          const token = `${n}.${i}`;
          tm[effect.id] = { e: effect.event, at: now + Math.max(0, effect.delayMs), t: token };
          added.push({ k: "timer", n: effect.id, t: token });
          timers = true;
          break;
        }
        case "cancel":
          delete tm[effect.id];
          break;
        case "send":
          added.push({
            k: "send",
            b: effect.entity,
            p: effect.partitions,
            to: effect.to,
            id: derivedId(def.name, id, n, i),
            e: effect.event,
          });
          break;
        case "emit":
          added.push({ k: "emit", id: derivedId(def.name, id, n, i), e: effect.event });
          break;
        case "run":
          runs.push(effect.run);
          break;
      }
    }
  };
  if (loaded.initialEffects) effects(loaded.initialEffects);

  for (const [index, message] of messages.entries()) {
    const seq = seqs?.[index];
    if (seq !== undefined) {
      if (sq !== undefined && seq <= sq) {
        outcomes.push(
          message.k === "tm" ? { kind: "skip" } : { kind: "ok", snapshot: snapshotOf(), dup: true },
        );
        continue;
      }
      sq = seq;
    }
    if (message.k === "tm") {
      const timer = message.tn === undefined ? undefined : tm[message.tn];
      if (timer === undefined || timer.t !== message.tt) {
        outcomes.push({ kind: "skip" });
        continue;
      }
      if (timer.at - now > EARLY_TOLERANCE_MS) {
        outcomes.push({ kind: "early", delayMs: timer.at - now });
        continue;
      }
      delete tm[message.tn as string];
      changed = true;
    }
    if (ids.includes(message.id)) {
      outcomes.push({ kind: "ok", snapshot: snapshotOf(), dup: true });
      continue;
    }
    ids.push(message.id);
    changed = true;
    const step = logic.apply(state, message.e, id);
    if (step.kind === "applied") {
      state = step.state;
      n++;
      effects(step.effects);
      outcomes.push({ kind: "ok", snapshot: snapshotOf() });
    } else if (step.kind === "rejected") {
      outcomes.push({
        kind: "error",
        code: "FA_ENTITY_REJECTED",
        message: `no transition takes "${message.e.type}" in state ${JSON.stringify(step.value)}`,
        eventType: message.e.type,
        state: step.value,
      });
    } else {
      outcomes.push({
        kind: "error",
        code: "FA_ENTITY_EVENT_FAILED",
        message: step.reason,
        eventType: message.e.type,
        reason: step.reason,
      });
    }
  }
  const window = def.options.dedupWindow;
  if (ids.length > window) ids.splice(0, ids.length - window);
  const unsent = [...loaded.unsent, ...added];
  const next: Loaded = {
    state,
    revision: loaded.revision,
    unsent,
    record: {
      v: 1,
      mv: def.options.version,
      n,
      s: changed ? logic.persist(state) : record.s,
      ids,
      ...(sq === undefined ? {} : { sq }),
      tm,
      ob: unsent,
      at: now,
    },
  };
  return { changed, next, outcomes, runs, timers };
}

/** The id of the i-th message the entity's version-n step sent: the same after any redelivery. */
function derivedId(entity: string, id: string, n: number, i: number): string {
  const hash = createHash("sha256").update(`${entity}\u0000${id}\u0000${n}\u0000${i}`).digest("base64url");
  return `x${hash.slice(0, 22)}`;
}
