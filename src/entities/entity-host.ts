/**
 * Holds the partitions of one entity type for one worker. Messages of a held partition go to
 * their entity's slot; each slot runs one batch at a time (one event at a time per id, ids in
 * parallel): load the entity if it is not in memory, apply the batch (entity-step.ts), write the
 * new record by compare-and-set on the revision read, then acknowledge, answer, and send the
 * outbox. A write refused by compare-and-set means someone else wrote the entity meanwhile (a
 * holder that froze and woke, a hand-over): the entity is read again and the batch applied again
 * to what is stored, where already-applied events are recognised by their ids.
 *
 * Entities stay in memory as XState snapshots (no live actor), least recently used first out,
 * and leave after passivateAfterMs without events.
 */
import { type MailboxMessage, type PartitionHold, partitionOf } from "../../transports/entity-mailbox.js";
import type { Clock, TimerHandle } from "../clock.js";
import { describeThrown, EntityEventError, EntitySnapshotError, StateConflictError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { AnyEntityDefinition } from "./define-entity.js";
import type { EntityBackends } from "./entity-backends.js";
import { decodeEntityMessage, type EntityMessage } from "./entity-messages.js";
import type { EntityOutbox } from "./entity-outbox.js";
import { decodeRecord, encodeRecord } from "./entity-record.js";
import { type Loaded, type Outcome, planBatch } from "./entity-step.js";

interface Pending {
  message: EntityMessage;
  mail: MailboxMessage;
  generation: number;
}

interface Slot {
  readonly id: string;
  readonly partition: number;
  loaded?: Loaded;
  queue: Pending[];
  running: boolean;
  lastUsed: number;
}

interface PartitionState {
  readonly index: number;
  hold?: Promise<PartitionHold | undefined>;
  generation: number;
  releasing: boolean;
  /** Batches under way for this partition's entities. */
  running: number;
  idle?: () => void;
}

export interface EntityHostStats {
  entity: string;
  partitions: number[];
  active: number;
  applied: number;
  duplicates: number;
  rejected: number;
  /** Writes refused by compare-and-set (another holder wrote first): the batch was applied again. */
  conflicts: number;
  malformed: number;
}

export interface EntityHostOptions {
  holder: string;
  clock: Clock;
  logger: Logger;
  outbox: EntityOutbox;
  /** How long a silent holder keeps a leased partition (passed to the mailbox). */
  failoverMs: number;
}

const MAX_BATCH = 64;
const RETRY_MS = [50, 100, 250, 500, 1000, 2000];

export class EntityHost {
  private readonly slots = new Map<string, Slot>();
  private readonly parts = new Map<number, PartitionState>();
  private stopped = false;
  private passivation?: TimerHandle;
  private readonly counts = { applied: 0, duplicates: 0, rejected: 0, conflicts: 0, malformed: 0 };

  constructor(
    readonly def: AnyEntityDefinition,
    private readonly backends: EntityBackends,
    private readonly options: EntityHostOptions,
  ) {
    this.schedulePassivation();
  }

  get stats(): EntityHostStats {
    return {
      entity: this.def.name,
      partitions: [...this.parts.keys()].sort((a, b) => a - b),
      active: this.slots.size,
      ...this.counts,
    };
  }

  /** Claims the partitions in `wanted` it does not claim yet, releases the others. */
  async assign(wanted: ReadonlySet<number>): Promise<void> {
    if (this.stopped) return;
    const work: Array<Promise<void>> = [];
    for (const index of [...this.parts.keys()]) if (!wanted.has(index)) work.push(this.release(index));
    for (const index of wanted) if (!this.parts.has(index)) work.push(this.claim(index));
    await Promise.all(work);
  }

  /** Releases every partition once its running batches finished (graceful), or at once. */
  async stop(graceful: boolean): Promise<void> {
    this.stopped = true;
    this.options.clock.clearTimeout(this.passivation);
    await Promise.all([...this.parts.keys()].map((index) => this.release(index, graceful)));
    this.slots.clear();
  }

  private async claim(index: number): Promise<void> {
    const part: PartitionState = { index, generation: 0, releasing: false, running: 0 };
    this.parts.set(index, part);
    part.hold = this.backends.mailbox
      .hold(this.def.name, this.def.partitions, index, (mail) => this.onMessage(part, mail), {
        holder: this.options.holder,
        inFlight: this.def.options.inFlight,
        failoverMs: this.options.failoverMs,
        onReset: (reason) => this.reset(part, reason),
      })
      .catch((error: unknown) => {
        this.options.logger.error(
          { entity: this.def.name, partition: index, err: describeThrown(error) },
          "could not claim an entity partition; trying again at the next membership change",
        );
        if (this.parts.get(index) === part) this.parts.delete(index);
        return undefined;
      });
    await part.hold;
  }

  private async release(index: number, graceful = true): Promise<void> {
    const part = this.parts.get(index);
    if (!part || part.releasing) return;
    part.releasing = true;
    part.generation++;
    this.dropQueued(part);
    if (graceful && part.running > 0) await new Promise<void>((resolve) => (part.idle = resolve));
    for (const [id, slot] of this.slots) if (slot.partition === index && !slot.running) this.slots.delete(id);
    const hold = await part.hold;
    await hold?.release().catch((error: unknown) => {
      this.options.logger.warn(
        { entity: this.def.name, partition: index, err: describeThrown(error) },
        "release failed",
      );
    });
    if (this.parts.get(index) === part) this.parts.delete(index);
  }

  /** The mailbox took back what it handed over: drop it (it comes again, in order). */
  private reset(part: PartitionState, reason: Error): void {
    part.generation++;
    this.dropQueued(part);
    this.options.logger.warn(
      { entity: this.def.name, partition: part.index, reason: reason.message },
      "entity partition reset by the broker; its events come again",
    );
  }

  private dropQueued(part: PartitionState): void {
    for (const slot of this.slots.values()) {
      if (slot.partition === part.index)
        slot.queue = slot.queue.filter((p) => p.generation === part.generation);
    }
  }

  private onMessage(part: PartitionState, mail: MailboxMessage): void {
    if (part.releasing || this.stopped) return; // not acked: it goes to the next holder
    let message: EntityMessage;
    try {
      message = decodeEntityMessage(mail.body);
    } catch (error) {
      this.counts.malformed++;
      this.options.logger.warn(
        { entity: this.def.name, partition: part.index, reason: describeThrown(error) },
        "dropped a malformed entity message",
      );
      mail.ack();
      return;
    }
    if (partitionOf(message.to, this.def.partitions) !== part.index) {
      this.counts.malformed++;
      this.options.logger.warn(
        { entity: this.def.name, id: message.to },
        "dropped an entity message in the wrong partition",
      );
      mail.ack();
      return;
    }
    let slot = this.slots.get(message.to);
    if (slot) {
      this.slots.delete(message.to); // re-inserted last: the map's order is least recently used first
    } else {
      slot = { id: message.to, partition: part.index, queue: [], running: false, lastUsed: 0 };
    }
    this.slots.set(message.to, slot);
    slot.lastUsed = this.options.clock.now();
    slot.queue.push({ message, mail, generation: part.generation });
    if (!slot.running) void this.run(slot, part);
  }

  private async run(slot: Slot, part: PartitionState): Promise<void> {
    slot.running = true;
    part.running++;
    try {
      while (slot.queue.length > 0 && !part.releasing) {
        const batch = slot.queue.splice(0, MAX_BATCH);
        await this.process(slot, part, batch);
      }
    } catch (error) {
      this.options.logger.error(
        { entity: this.def.name, id: slot.id, err: describeThrown(error) },
        "entity batch failed",
      );
      slot.loaded = undefined;
    } finally {
      slot.running = false;
      if (part.releasing && slot.queue.length === 0) this.slots.delete(slot.id);
      part.running--;
      if (part.running === 0) part.idle?.();
      this.trim();
    }
  }

  /** Applies one batch and stores the result; retries on conflicts and store failures while held. */
  private async process(slot: Slot, part: PartitionState, batch: Pending[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const live = batch.filter((p) => p.generation === part.generation);
      if (live.length === 0) return;
      try {
        slot.loaded ??= await this.load(slot.id);
        this.options.outbox.forgetSent(slot.loaded);
      } catch (error) {
        if (error instanceof EntitySnapshotError) return this.refuse(live, error);
        await this.pause(attempt, slot, error);
        continue;
      }
      let plan: ReturnType<typeof planBatch>;
      try {
        plan = planBatch(
          this.def,
          slot.id,
          slot.loaded,
          live.map((p) => p.message),
          this.options.clock.now(),
          live.map((p) => p.mail.seq),
        );
      } catch (error) {
        // The logic threw outside a transition (persisting or reading its state): no retry fixes it.
        slot.loaded = undefined;
        return this.refuse(live, new EntityEventError(this.def.name, slot.id, "?", describeThrown(error)));
      }
      if (plan.changed) {
        try {
          const data = encodeRecord(plan.next.record, this.backends.store.maxValueBytes);
          // Timers leave first: a timer message without its state is skipped when it comes (its
          // token is not in the record); a state whose timer never left would wait forever.
          if (plan.timers) await this.options.outbox.sendTimers(this.def, slot.id, plan.next);
          plan.next.revision = await this.backends.store.put(
            this.def.name,
            slot.id,
            data,
            slot.loaded.revision,
          );
        } catch (error) {
          slot.loaded = undefined;
          if (error instanceof StateConflictError) {
            this.counts.conflicts++;
            this.options.logger.warn(
              { entity: this.def.name, id: slot.id, conflicts: this.counts.conflicts },
              "entity write refused by compare-and-set: another holder wrote it since it was read; reading it again",
            );
            continue;
          }
          if (isPermanent(error)) return this.refuse(live, error as Error);
          await this.pause(attempt, slot, error);
          continue;
        }
      }
      slot.loaded = plan.next;
      this.settle(live, plan.outcomes, slot);
      for (const run of plan.runs) this.runEffect(run, slot.id);
      if (plan.next.unsent.length > 0) this.options.outbox.flush(this.def, slot.id, plan.next);
      return;
    }
  }

  private async load(id: string): Promise<Loaded> {
    const { store } = this.backends;
    const stored = await store.get(this.def.name, id);
    const def = this.def;
    if (stored === null) {
      let initial: ReturnType<typeof def.logic.initial>;
      try {
        initial = def.logic.initial(id);
      } catch (error) {
        throw new EntitySnapshotError(
          `The initial state of ${def.name} ${JSON.stringify(id)} could not be made: ${describeThrown(error)}. Fix the machine's initial context or entry actions.`,
          def.name,
          id,
          { cause: error },
        );
      }
      const { state, effects } = initial;
      return {
        state,
        revision: null,
        unsent: [],
        initialEffects: effects,
        record: { v: 1, mv: def.options.version, n: 0, s: undefined, ids: [], tm: {}, ob: [], at: 0 },
      };
    }
    const fail = (why: string, cause?: unknown) =>
      new EntitySnapshotError(`The stored state of ${def.name} ${JSON.stringify(id)} ${why}`, def.name, id, {
        cause,
      });
    let record: ReturnType<typeof decodeRecord>;
    try {
      record = decodeRecord(stored.data);
    } catch (error) {
      throw fail(`cannot be read: ${describeThrown(error)}. It is left as it is.`, error);
    }
    let persisted = record.s;
    if (record.mv > def.options.version) {
      // A newer machine wrote it (a rolling deploy, a rollback): migrate() turns older snapshots
      // into this version's, never newer ones, and writing over it would lose what it knows.
      throw fail(
        `was written by version ${record.mv} of its machine, newer than this one (version ${def.options.version}). ` +
          "Run the newer version on every worker that holds this entity type. The stored state is left as it is.",
      );
    }
    if (record.mv !== def.options.version) {
      if (!def.options.migrate) {
        throw fail(
          `was written by version ${record.mv} of its machine; this one is version ${def.options.version} and has no ` +
            "migrate() option. Give defineEntity a migrate(snapshot, fromVersion) that returns a snapshot of this " +
            "version. The stored state is left as it is.",
        );
      }
      try {
        persisted = def.options.migrate(record.s, record.mv);
      } catch (error) {
        throw fail(
          `could not be migrated from version ${record.mv}: ${describeThrown(error)}. It is left as it is.`,
          error,
        );
      }
    }
    let state: unknown;
    try {
      state = def.logic.restore(persisted);
    } catch (error) {
      throw fail(
        `cannot be restored by this machine (version ${def.options.version}): ${describeThrown(error)}. Raise ` +
          "the version and give a migrate() option. The stored state is left as it is.",
        error,
      );
    }
    const loaded: Loaded = { state, record, revision: stored.revision, unsent: [...record.ob] };
    if (loaded.unsent.length > 0) this.options.outbox.flush(def, id, loaded); // what a previous holder may not have sent
    return loaded;
  }

  private settle(batch: readonly Pending[], outcomes: readonly Outcome[], slot: Slot): void {
    for (let i = 0; i < batch.length; i++) {
      const { message, mail } = batch[i] as Pending;
      const outcome = outcomes[i] as Outcome;
      if (outcome.kind === "early") {
        this.options.outbox.reschedule(this.def, message, outcome.delayMs).then(
          () => mail.ack(),
          () => {}, // not acked: it comes again
        );
        continue;
      }
      mail.ack();
      if (outcome.kind === "ok") {
        if (outcome.dup) this.counts.duplicates++;
        else this.counts.applied++;
      } else if (outcome.kind === "error") {
        this.counts.rejected++;
      }
      if (message.r && outcome.kind !== "skip") this.options.outbox.answer(message.r, outcome);
    }
    slot.lastUsed = this.options.clock.now();
  }

  /** Answers every event of the batch with the error and acknowledges them: they cannot be applied. */
  private refuse(batch: readonly Pending[], error: Error): void {
    for (const { message, mail } of batch) {
      mail.ack();
      this.counts.rejected++;
      if (message.r) {
        this.options.outbox.answer(message.r, {
          kind: "error",
          code: (error as { code?: string }).code ?? "FA_ENTITY",
          message: error.message,
          eventType: message.e.type,
        });
      }
    }
    this.options.logger.error({ entity: this.def.name, err: error.message }, "entity events refused");
  }

  private async pause(attempt: number, slot: Slot, error: unknown): Promise<void> {
    const ms = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)] as number;
    this.options.logger.warn(
      { entity: this.def.name, id: slot.id, err: describeThrown(error), retryInMs: ms },
      "entity state store failed; trying again",
    );
    await new Promise<void>((resolve) => this.options.clock.setTimeout(resolve, ms));
  }

  private runEffect(run: () => void, id: string): void {
    try {
      run();
    } catch (error) {
      this.options.logger.warn(
        { entity: this.def.name, id, err: describeThrown(error) },
        "an entity action failed",
      );
    }
  }

  /** Keeps at most maxActive entities in memory, least recently used out first. */
  private trim(): void {
    const max = this.def.options.maxActive;
    if (this.slots.size <= max) return;
    for (const [id, slot] of this.slots) {
      if (this.slots.size <= max) break;
      if (!slot.running && slot.queue.length === 0) this.slots.delete(id);
    }
  }

  /** Entities idle for passivateAfterMs leave memory (the oldest are first in the map). */
  private schedulePassivation(): void {
    const every = Math.max(50, Math.floor(this.def.options.passivateAfterMs / 2));
    this.passivation = this.options.clock.setTimeout(() => {
      if (this.stopped) return;
      const limit = this.options.clock.now() - this.def.options.passivateAfterMs;
      for (const [id, slot] of this.slots) {
        if (slot.lastUsed > limit) break;
        if (!slot.running && slot.queue.length === 0) this.slots.delete(id);
      }
      this.schedulePassivation();
    }, every);
  }
}

/** Errors retrying cannot fix (too large, not serializable): the events are refused. */
function isPermanent(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === "FA_PAYLOAD_TOO_LARGE" || code === "FA_NOT_SERIALIZABLE";
}
