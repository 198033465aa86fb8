/**
 * Which tasks a coordinator accepts. A task type, with the tags it carries, becomes a metric label
 * and a dashboard row, and a task nobody serves waits (parked, src/lane-router.ts), so a client must
 * not be able to make them grow by inventing types or tag sets (broker queues no longer follow
 * types: src/names.ts). Accepted: the types of the coordinator's own
 * handlers (with tags its workers carry); then either the declared list (`taskTypes`, any tags), or,
 * by default, the types and tag sets a worker on the transport serves or has served since this
 * coordinator started. A submit of another waits up to `typeDiscoveryMs` for a worker that serves it
 * to announce itself (the replies to the ping `start()` sends, a worker starting), then fails with
 * NoHandlerError. `taskTypes: "any"` accepts every valid name (tasks wait for a worker).
 */
import type { Clock, TimerHandle } from "./clock.js";
import { ConfigError, NoHandlerError } from "./errors.js";
import type { HandlerTable } from "./handlers.js";
import { assertTaskType } from "./names.js";
import type { TransportWorkerRegistry } from "./registry.js";
import type { WorkerInfo } from "./types.js";

/** Types, and worker profiles (types × tags), remembered: they come from workers, not clients; bounded all the same. */
const MAX_SERVED = 10_000;
/** Submits waiting for a type to be discovered at once; more are refused without waiting. */
const MAX_WAITING = 10_000;
/** Types named in a NoHandlerError message at most. */
const MAX_NAMED = 20;
const NO_TAGS: readonly string[] = [];

export interface TypeAdmissionOptions {
  handlers: HandlerTable;
  /** The tags the coordinator's own workers carry. */
  localTags(): readonly string[];
  registry: TransportWorkerRegistry;
  clock: Clock;
  /** The declared types, or "any"; undefined: the types workers serve. */
  taskTypes?: readonly string[] | "any";
  /** How long a submit no known worker serves waits for one. 0: not at all. */
  discoveryMs: number;
}

interface Waiter {
  type: string;
  tags: readonly string[];
  done(admitted: boolean): void;
}

/** What a worker serves: its task types, with its tags. */
interface Profile {
  types: ReadonlySet<string>;
  tags: ReadonlySet<string>;
}

export class TypeAdmission {
  private readonly declared?: ReadonlySet<string>;
  private readonly any: boolean;
  private readonly served = new Set<string>();
  private readonly profiles = new Map<string, Profile>();
  private readonly waiters = new Set<Waiter>();

  constructor(private readonly options: TypeAdmissionOptions) {
    const { taskTypes } = options;
    this.any = taskTypes === "any";
    if (taskTypes !== undefined && taskTypes !== "any") {
      if (!Array.isArray(taskTypes) || taskTypes.length > MAX_SERVED) {
        throw new ConfigError(
          `CoordinatorOptions.taskTypes must be "any" or an array of at most ${MAX_SERVED} task types.`,
        );
      }
      for (const type of taskTypes) assertTaskType(type);
      this.declared = new Set(taskTypes);
    }
    options.registry.onHeartbeat((info) => this.learn(info));
  }

  /**
   * Undefined when a task of `type` with `tags` (normalized) is accepted now; a promise that settles
   * once it is (or rejects with NoHandlerError); throws at once when it is refused without waiting.
   */
  admit(type: string, tags: readonly string[] | undefined, wait: boolean): Promise<void> | undefined {
    const tagged = tags !== undefined && tags.length > 0;
    if (!tagged && (this.options.handlers.has(type) || this.served.has(type))) return undefined;
    assertTaskType(type);
    if (this.any) return undefined;
    if (this.declared !== undefined) {
      if (this.declared.has(type) || this.options.handlers.has(type)) return undefined;
      throw this.refusal(type, NO_TAGS);
    }
    const wanted = tags ?? NO_TAGS;
    if (this.serves(type, wanted)) return undefined;
    for (const info of this.options.registry.list({ type })) this.learn(info);
    if (this.serves(type, wanted)) return undefined;
    if (!wait || this.options.discoveryMs <= 0 || this.waiters.size >= MAX_WAITING) {
      throw this.refusal(type, wanted);
    }
    return this.discover(type, wanted);
  }

  /** Whether this coordinator's workers, or a worker seen on the transport, take `type` with `tags`. */
  private serves(type: string, tags: readonly string[]): boolean {
    if (this.options.handlers.has(type)) {
      const local = this.options.localTags();
      if (tags.every((t) => local.includes(t))) return true;
    }
    if (tags.length === 0) return this.served.has(type);
    for (const p of this.profiles.values()) {
      if (p.types.has(type) && tags.every((t) => p.tags.has(t))) return true;
    }
    return false;
  }

  private discover(type: string, tags: readonly string[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const waiter: Waiter = {
        type,
        tags,
        done: (admitted) => {
          this.waiters.delete(waiter);
          this.options.clock.clearTimeout(timer);
          if (admitted) resolve();
          else reject(this.refusal(type, tags));
        },
      };
      this.waiters.add(waiter);
      timer = this.options.clock.setTimeout(() => waiter.done(false), this.options.discoveryMs);
    });
  }

  private learn(info: WorkerInfo): void {
    // A heartbeat comes off the wire: not trusted blindly.
    if (!Array.isArray(info.types) || !info.types.every((t) => typeof t === "string")) return;
    const tags = Array.isArray(info.tags) ? info.tags.filter((t) => typeof t === "string") : [];
    let changed = false;
    for (const type of info.types) {
      if (this.served.has(type) || this.served.size >= MAX_SERVED) continue;
      this.served.add(type);
      changed = true;
    }
    const key = `${[...info.types].sort().join(",")}|${[...tags].sort().join(",")}`;
    if (tags.length > 0 && !this.profiles.has(key) && this.profiles.size < MAX_SERVED) {
      this.profiles.set(key, { types: new Set(info.types), tags: new Set(tags) });
      changed = true;
    }
    if (!changed) return;
    for (const waiter of this.waiters) if (this.serves(waiter.type, waiter.tags)) waiter.done(true);
  }

  private refusal(type: string, tags: readonly string[]): NoHandlerError {
    const known = [...this.options.handlers.types, ...(this.declared ?? this.served)];
    const named = known.slice(0, MAX_NAMED);
    if (known.length > MAX_NAMED) named.push(`… (${known.length - MAX_NAMED} more)`);
    return new NoHandlerError(type, named, tags);
  }
}
