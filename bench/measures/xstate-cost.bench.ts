/**
 * What XState costs, for context (the performance budget in DESIGN.md): an actor's life
 * (create, start, 2 events, stop), one pure transition(), one lookup in the table fastagentic
 * compiles from the task machine, and the heap of a live actor against a snapshot.
 */
import { createActor, initialTransition, transition } from "xstate";
import { nextTaskState, taskMachine } from "../../actors/task.machine.js";
import type { XStateResult } from "../report/bench-results.js";
import { settledMemory } from "./gc-settle.js";

const TIME_BOUND_MS = 10_000;

/** Mean µs per call of `fn` over up to `n` calls (fewer if the time bound is reached). */
function timePerCallUs(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(1000, n); i++) fn(i); // warm-up
  const start = performance.now();
  let i = 0;
  for (; i < n; i++) {
    fn(i);
    if ((i & 255) === 0 && performance.now() - start > TIME_BOUND_MS) break;
  }
  return ((performance.now() - start) * 1000) / Math.max(1, i);
}

export async function measureXStateCost(input: { actors: number }): Promise<XStateResult> {
  const n = input.actors;
  const actorLifecycleUs = timePerCallUs(n, () => {
    const actor = createActor(taskMachine, { input: { retries: 0 } }).start();
    actor.send({ type: "ENQUEUE" });
    actor.send({ type: "START" });
    actor.stop();
  });
  const [initial] = initialTransition(taskMachine, { retries: 0 });
  const pureTransitionUs = timePerCallUs(n, () => {
    transition(taskMachine, initial, { type: "ENQUEUE" });
  });
  let sink = 0;
  const lookups = n * 100;
  const compiledLookupNs =
    timePerCallUs(lookups, (i) => {
      if (nextTaskState(i & 1 ? "queued" : "pending", i & 1 ? "START" : "ENQUEUE", false) === "running")
        sink++;
    }) * 1000;
  if (sink < 0) throw new Error("unreachable");

  const before = settledMemory();
  const actors = Array.from({ length: n }, () => {
    const actor = createActor(taskMachine, { input: { retries: 0 } }).start();
    actor.send({ type: "ENQUEUE" });
    return actor;
  });
  const withActors = settledMemory();
  const heapBytesPerLiveActor = (withActors.heapUsed - before.heapUsed) / n;
  for (const a of actors) a.stop();
  actors.length = 0;
  const beforeSnapshots = settledMemory();
  const snapshots = Array.from({ length: n }, () => {
    const actor = createActor(taskMachine, { input: { retries: 0 } }).start();
    actor.send({ type: "ENQUEUE" });
    const snapshot = actor.getPersistedSnapshot();
    actor.stop();
    return snapshot;
  });
  const withSnapshots = settledMemory();
  const heapBytesPerSnapshot = (withSnapshots.heapUsed - beforeSnapshots.heapUsed) / snapshots.length;
  return {
    actors: n,
    actorLifecycleUs,
    pureTransitionUs,
    compiledLookupNs,
    heapBytesPerLiveActor,
    heapBytesPerSnapshot,
  };
}
