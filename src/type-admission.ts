/**
 * Which task types a coordinator accepts. A type becomes a broker queue (a JetStream stream, a
 * RabbitMQ queue) and a metric label, so a client must not be able to make them grow by inventing
 * types. Accepted: the types of the coordinator's own handlers; then either the declared list
 * (`taskTypes`), or, by default, the types a worker on the transport serves or has served since
 * this coordinator started. A submit of another type waits up to `typeDiscoveryMs` for a worker that
 * serves it to announce itself (the replies to the ping `start()` sends, a worker starting), then
 * fails with NoHandlerError. `taskTypes: "any"` accepts every valid name (tasks wait for a worker).
 */
import type { Clock, TimerHandle } from "./clock.js";
import { ConfigError, NoHandlerError } from "./errors.js";
import type { HandlerTable } from "./handlers.js";
import { assertTaskType } from "./names.js";
import type { TransportWorkerRegistry } from "./registry.js";
import type { WorkerInfo } from "./types.js";

/** Types remembered as served (they come from workers, not from clients; a bound all the same). */
const MAX_SERVED_TYPES = 10_000;
/** Submits waiting for a type to be discovered at once; more are refused without waiting. */
const MAX_WAITING = 10_000;
/** Types named in a NoHandlerError message at most. */
const MAX_NAMED = 20;

export interface TypeAdmissionOptions {
  handlers: HandlerTable;
  registry: TransportWorkerRegistry;
  clock: Clock;
  /** The declared types, or "any"; undefined: the types workers serve. */
  taskTypes?: readonly string[] | "any";
  /** How long a submit of a type no known worker serves waits for one. 0: not at all. */
  discoveryMs: number;
}

interface Waiter {
  type: string;
  done(admitted: boolean): void;
}

export class TypeAdmission {
  private readonly declared?: ReadonlySet<string>;
  private readonly any: boolean;
  private readonly served = new Set<string>();
  private readonly waiters = new Set<Waiter>();

  constructor(private readonly options: TypeAdmissionOptions) {
    const { taskTypes } = options;
    this.any = taskTypes === "any";
    if (taskTypes !== undefined && taskTypes !== "any") {
      if (!Array.isArray(taskTypes) || taskTypes.length > MAX_SERVED_TYPES) {
        throw new ConfigError(
          `CoordinatorOptions.taskTypes must be "any" or an array of at most ${MAX_SERVED_TYPES} task types.`,
        );
      }
      for (const type of taskTypes) assertTaskType(type);
      this.declared = new Set(taskTypes);
    }
    options.registry.onHeartbeat((info) => this.learn(info));
  }

  /**
   * Undefined when `type` is accepted now; a promise that settles once it is (or rejects with
   * NoHandlerError); throws at once when it is refused without waiting.
   */
  admit(type: string, wait: boolean): Promise<void> | undefined {
    if (this.options.handlers.has(type) || this.served.has(type)) return undefined;
    assertTaskType(type);
    if (this.any) return undefined;
    if (this.declared !== undefined) {
      if (this.declared.has(type)) return undefined;
      throw this.refusal(type);
    }
    for (const info of this.options.registry.list({ type })) this.learn(info);
    if (this.served.has(type)) return undefined;
    if (!wait || this.options.discoveryMs <= 0 || this.waiters.size >= MAX_WAITING) throw this.refusal(type);
    return this.discover(type);
  }

  /** The types accepted besides the handlers' (declared, or served so far). */
  get known(): string[] {
    return [...(this.declared ?? this.served)];
  }

  private discover(type: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const waiter: Waiter = {
        type,
        done: (admitted) => {
          this.waiters.delete(waiter);
          this.options.clock.clearTimeout(timer);
          if (admitted) resolve();
          else reject(this.refusal(type));
        },
      };
      this.waiters.add(waiter);
      timer = this.options.clock.setTimeout(() => waiter.done(false), this.options.discoveryMs);
    });
  }

  private learn(info: WorkerInfo): void {
    if (!Array.isArray(info.types)) return; // a heartbeat from the wire: not trusted blindly
    for (const type of info.types) {
      if (typeof type !== "string" || this.served.has(type) || this.served.size >= MAX_SERVED_TYPES) continue;
      this.served.add(type);
      for (const waiter of this.waiters) if (waiter.type === type) waiter.done(true);
    }
  }

  private refusal(type: string): NoHandlerError {
    const known = [...this.options.handlers.types, ...this.known];
    const named = known.slice(0, MAX_NAMED);
    if (known.length > MAX_NAMED) named.push(`… (${known.length - MAX_NAMED} more)`);
    return new NoHandlerError(type, named);
  }
}
