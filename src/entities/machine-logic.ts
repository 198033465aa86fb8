/**
 * An XState v5 machine as entity logic, driven the way XState's pure `transition()` drives it
 * (the documented API for durable, server-side machines): `machine.transition(snapshot, event,
 * scope)` with an action executor that collects the actions instead of running them. XState's
 * `transition()` builds a new inert actor for each call (≈30 µs here); this keeps one per entity
 * type and reuses it (≈4 µs a step), which test/unit/entities/machine-logic.test.ts checks gives
 * the same snapshots and actions as `transition()` itself.
 *
 * Collected actions become effects: delayed raises (`after`, `raise(…, { delay })`) are durable
 * timers, `cancel` cancels one, `emit` goes to the event bus, `sendToEntity` to another entity,
 * other action functions run after the state is stored. Invoked and spawned child actors are not
 * supported: their restore is unreliable (xstate #5077) and they would run once per holder.
 */
import {
  type AnyActorScope,
  type AnyStateMachine,
  createActor,
  type EventObject,
  type ExecutableActionObject,
} from "xstate";
import { assertEventType } from "../../transports/event-log.js";
import { ConfigError, describeThrown } from "../errors.js";
import { showValue } from "../limits.js";
import { ENTITY_SEND, type EntitySendSpec } from "./entity-actions.js";
import type { Effect, EntityEvent, EntityLogic, EntityView, StepResult } from "./entity-logic.js";

interface MachineSnapshotLike {
  value: unknown;
  context: unknown;
  status: string;
}

export class MachineLogic implements EntityLogic {
  private readonly scope: AnyActorScope;
  private collected: ExecutableActionObject[] = [];

  constructor(
    readonly machine: AnyStateMachine,
    readonly name: string,
    private readonly partitions: number,
  ) {
    assertNoChildren(machine, name);
    // Never started: only its system and identity serve the steps. Its own initial snapshot may
    // fail (a context factory that needs real input); XState keeps that error to itself.
    const self = createActor(machine, { input: { id: "" } });
    this.scope = {
      self,
      defer: () => {},
      id: "",
      logger: () => {},
      sessionId: "",
      stopChild: () => {},
      system: self.system,
      emit: () => {},
      actionExecutor: (action: ExecutableActionObject) => {
        this.collected.push(action);
      },
    } as unknown as AnyActorScope;
  }

  initial(id: string): { state: unknown; effects: Effect[] } {
    this.collected = [];
    const state = this.machine.getInitialSnapshot(this.scope, { id });
    return { state, effects: this.effects(this.collected, id) };
  }

  apply(state: unknown, event: EntityEvent, id: string): StepResult {
    const before = state as MachineSnapshotLike;
    this.collected = [];
    let next: MachineSnapshotLike;
    try {
      next = this.machine.transition(
        before as never,
        event as EventObject,
        this.scope,
      ) as MachineSnapshotLike;
    } catch (error) {
      return { kind: "failed", reason: describeThrown(error) };
    }
    if (next.status === "error")
      return { kind: "failed", reason: describeThrown((next as { error?: unknown }).error) };
    // XState hands back the same snapshot when no transition took the event; a transition that only
    // runs actions keeps it too, but leaves its actions behind.
    if (next === before && this.collected.length === 0) return { kind: "rejected", value: before.value };
    try {
      return { kind: "applied", state: next, effects: this.effects(this.collected, id) };
    } catch (error) {
      return { kind: "failed", reason: describeThrown(error) };
    }
  }

  /**
   * What `machine.getPersistedSnapshot(state)` gives for a machine without child actors (entities
   * have none), built without its object-rest copy, which took ~8 % of an in-memory event's time:
   * test/unit/entities/machine-logic.test.ts checks the two agree.
   */
  persist(state: unknown): unknown {
    const s = state as MachineSnapshotLike & {
      output?: unknown;
      error?: unknown;
      historyValue?: Record<string, unknown>;
    };
    return {
      status: s.status,
      output: s.output,
      error: s.error,
      value: s.value,
      historyValue: persistHistory(s.historyValue),
      context: s.context,
      children: {},
    };
  }

  restore(persisted: unknown): unknown {
    return this.machine.restoreSnapshot(persisted as never, this.scope);
  }

  view(state: unknown): EntityView {
    const s = state as MachineSnapshotLike;
    return { value: s.value, context: s.context, status: s.status };
  }

  private effects(actions: readonly ExecutableActionObject[], id: string): Effect[] {
    const effects: Effect[] = [];
    let unnamed = 0;
    for (const action of actions) {
      const params = action.params as Record<string, unknown> | undefined;
      switch (action.type) {
        case "xstate.raise": {
          const delay = params?.["delay"];
          if (typeof delay === "number") {
            const event = params?.["event"] as EntityEvent;
            const timerId = (params?.["id"] as string | undefined) ?? `${event.type}#${unnamed++}`;
            effects.push({ k: "timer", id: timerId, event, delayMs: delay });
          }
          break;
        }
        case "xstate.cancel":
          effects.push({ k: "cancel", id: String(params?.["sendId"]) });
          break;
        case "xstate.emit": {
          const event = params?.["event"] as EntityEvent;
          assertEventType(event?.type); // an emitted event goes on the bus: its type must be one there
          effects.push({ k: "emit", event });
          break;
        }
        case "xstate.sendTo":
          effects.push(this.sendTo(params ?? {}, id, unnamed++));
          break;
        case "xstate.spawnChild":
          throw new ConfigError(
            `Entity "${this.name}" spawned a child actor; entities cannot run child actors. Start work ` +
              "through tasks or other entities (sendToEntity) instead.",
          );
        case "xstate.stopChild":
          break;
        default:
          effects.push(...this.custom(action));
      }
    }
    return effects;
  }

  /** `sendTo(self, …)`: to the entity itself (delayed: a timer). Other targets cannot be reached. */
  private sendTo(params: Record<string, unknown>, id: string, n: number): Effect {
    const event = params["event"] as EntityEvent;
    if (params["to"] !== this.scope.self) {
      throw new ConfigError(
        `Entity "${this.name}" used sendTo() to an actor other than itself; entities have no child ` +
          "actors. Use sendToEntity(Definition, id, event) to reach another entity.",
      );
    }
    const delay = params["delay"];
    if (typeof delay === "number") {
      return {
        k: "timer",
        id: (params["id"] as string | undefined) ?? `${event.type}#${n}`,
        event,
        delayMs: delay,
      };
    }
    return { k: "send", entity: this.name, partitions: this.partitions, to: id, event };
  }

  private custom(action: ExecutableActionObject): Effect[] {
    const exec = action.exec as
      | (((info: unknown, params: unknown) => void) & { [ENTITY_SEND]?: EntitySendSpec })
      | undefined;
    if (exec === undefined) return []; // a named action with no implementation: nothing to do
    const spec = exec[ENTITY_SEND];
    if (spec !== undefined) {
      const info = action.info;
      const to = typeof spec.to === "function" ? (spec.to as (args: unknown) => string)(info) : spec.to;
      const event =
        typeof spec.event === "function" ? (spec.event as (args: unknown) => EntityEvent)(info) : spec.event;
      if (typeof to !== "string" || to.length === 0) {
        throw new ConfigError(
          `sendToEntity(${spec.target.name}): the target id must be a non-empty string, got ${showValue(to)}.`,
        );
      }
      return [{ k: "send", entity: spec.target.name, partitions: spec.target.partitions, to, event }];
    }
    const { info, params } = action;
    return [{ k: "run", run: () => exec(info, params) }];
  }
}

/** XState's persisted history: the ids of the state nodes each history state remembers. */
function persistHistory(history: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof history !== "object" || history === null) return out;
  for (const key in history) {
    const nodes = history[key];
    if (Array.isArray(nodes)) out[key] = nodes.map((node: { id: string }) => ({ id: node.id }));
  }
  return out;
}

/** Entities cannot hold child actors: refuse machines that invoke any, up front. */
function assertNoChildren(machine: AnyStateMachine, name: string): void {
  const stack = [machine.root];
  while (stack.length > 0) {
    const node = stack.pop() as (typeof stack)[number];
    if (node.invoke.length > 0) {
      throw new ConfigError(
        `defineEntity("${name}"): the state "${node.id}" invokes an actor. Entities cannot run invoked or ` +
          "spawned actors (their state would not survive passivation or a move to another worker). Do " +
          "side effects in tasks (submit one from an action) or in other entities (sendToEntity).",
      );
    }
    stack.push(...Object.values(node.states));
  }
}
