/**
 * `defineEntity(name, machine, options)`: an entity type. Register it on the workers that hold
 * entities (`register(Order)`), address one from anywhere with `coordinator.entity(Order, id)`.
 */
import type { AnyStateMachine, ContextFrom, EventFromLogic, StateValueFrom } from "xstate";
import { assertPartition, MAX_PARTITIONS } from "../../transports/entity-mailbox.js";
import { readOptions } from "../config.js";
import { ConfigError, InvalidNameError } from "../errors.js";
import { showValue } from "../limits.js";
import type { EntityEvent, EntityLogic } from "./entity-logic.js";
import { MachineLogic } from "./machine-logic.js";

export interface EntityOptions {
  /**
   * Partitions of the entity type's mailbox (default 16): the unit of ordering, of parallelism
   * and of hand-over between workers. Every process must use the same value for a type; changing
   * it needs the mailbox drained first.
   */
  partitions?: number;
  /** The machine's version (default 1), stored with each snapshot. Raise it when snapshots change shape. */
  version?: number;
  /**
   * Turns a snapshot stored by an older `version` into one this machine restores. Without it, an
   * entity stored by another version answers EntitySnapshotError instead of being guessed at.
   */
  migrate?: (snapshot: unknown, fromVersion: number) => unknown;
  /** An entity that received nothing for this long leaves memory (its state stays stored). Default 60 s. */
  passivateAfterMs?: number;
  /** Entities kept in memory per holder at most; the least recently used leave first. Default 10,000. */
  maxActive?: number;
  /** Events of one partition a holder takes before acknowledging the first (default 32). */
  inFlight?: number;
  /** Event ids remembered with each entity to refuse a redelivered one (default 32, at least `inFlight`). */
  dedupWindow?: number;
  /** How long ask() waits for its answer by default (30 s). */
  askTimeoutMs?: number;
}

export type ResolvedEntityOptions = Required<Omit<EntityOptions, "migrate">> & Pick<EntityOptions, "migrate">;

const OPTION_KEYS = [
  "partitions",
  "version",
  "migrate",
  "passivateAfterMs",
  "maxActive",
  "inFlight",
  "dedupWindow",
  "askTimeoutMs",
] as const;

const ENTITY_DEFINITION: unique symbol = Symbol.for("fastagentic.entity.definition");

/** An entity type: its name, its logic and its options. The type parameters type `send`/`ask`. */
export interface EntityDefinition<
  TEvent extends EntityEvent = EntityEvent,
  TContext = unknown,
  TValue = unknown,
> {
  readonly name: string;
  readonly partitions: number;
  readonly options: ResolvedEntityOptions;
  /** @internal */
  readonly logic: EntityLogic;
  readonly [ENTITY_DEFINITION]: true;
  /** Type-level only. */
  readonly __types?: { event: TEvent; context: TContext; value: TValue };
}

// biome-ignore lint/suspicious/noExplicitAny: any definition, whatever its event and context types.
export type AnyEntityDefinition = EntityDefinition<any, any, any>;

export function defineEntity<M extends AnyStateMachine>(
  name: string,
  machine: M,
  options: EntityOptions = {},
): EntityDefinition<EventFromLogic<M> & EntityEvent, ContextFrom<M>, StateValueFrom<M>> {
  const where = `defineEntity(${showValue(name)})`;
  assertEntityName(name, where);
  if (!isMachine(machine)) {
    throw new ConfigError(
      `${where}: the second argument must be an XState v5 machine (createMachine / setup().createMachine).`,
    );
  }
  const resolved = resolveEntityOptions(options, where);
  return makeDefinition(name, new MachineLogic(machine, name, resolved.partitions), resolved);
}

/** @internal Builds a definition (used by defineEntity and the @Entity class form). */
export function makeDefinition(
  name: string,
  logic: EntityLogic,
  options: ResolvedEntityOptions,
): AnyEntityDefinition {
  return Object.freeze({
    name,
    partitions: options.partitions,
    options,
    logic,
    [ENTITY_DEFINITION]: true as const,
  });
}

export function isEntityDefinition(value: unknown): value is AnyEntityDefinition {
  try {
    return (
      typeof value === "object" &&
      value !== null &&
      (value as Record<symbol, unknown>)[ENTITY_DEFINITION] === true
    );
  } catch {
    return false; // a Proxy whose reads throw is no definition
  }
}

export function assertEntityName(name: unknown, where: string): asserts name is string {
  try {
    assertPartition(name, 1);
  } catch (error) {
    throw new InvalidNameError(`${where}: ${(error as Error).message}`, { cause: error });
  }
}

export function resolveEntityOptions(
  options: EntityOptions | undefined,
  where: string,
): ResolvedEntityOptions {
  const o: EntityOptions = readOptions(`${where} options`, options, OPTION_KEYS);
  const int = (key: keyof EntityOptions, fallback: number, min: number, max: number): number => {
    const value = o[key] === undefined ? fallback : o[key];
    if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
      throw new ConfigError(
        `${where}: ${key} must be an integer from ${min} to ${max}, got ${showValue(value)}.`,
      );
    }
    return value as number;
  };
  const inFlight = int("inFlight", 32, 1, 1024);
  const resolved: ResolvedEntityOptions = {
    partitions: int("partitions", 16, 1, MAX_PARTITIONS),
    version: int("version", 1, 1, Number.MAX_SAFE_INTEGER),
    passivateAfterMs: int("passivateAfterMs", 60_000, 1, 2 ** 31 - 1),
    maxActive: int("maxActive", 10_000, 1, 10_000_000),
    inFlight,
    dedupWindow: int("dedupWindow", Math.max(32, inFlight), 1, 4096),
    askTimeoutMs: int("askTimeoutMs", 30_000, 1, 2 ** 31 - 1),
  };
  if (resolved.dedupWindow < inFlight) {
    throw new ConfigError(
      `${where}: dedupWindow (${resolved.dedupWindow}) must be at least inFlight (${inFlight}): a holder that dies ` +
        "may leave that many applied events unacknowledged, and each must be recognised when it comes again.",
    );
  }
  if (o.migrate !== undefined) {
    if (typeof o.migrate !== "function") throw new ConfigError(`${where}: migrate must be a function.`);
    resolved.migrate = o.migrate;
  }
  return resolved;
}

function isMachine(value: unknown): value is AnyStateMachine {
  const m = value as Partial<AnyStateMachine> | null;
  try {
    return (
      typeof m === "object" &&
      m !== null &&
      typeof m.transition === "function" &&
      typeof m.getPersistedSnapshot === "function" &&
      typeof m.root === "object"
    );
  } catch {
    return false; // a Proxy whose reads throw is no machine
  }
}
