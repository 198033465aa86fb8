/**
 * Entry of a measure process (node --expose-gc --import tsx): env BENCH_MEASURE names the measure
 * and its input; the result goes back over IPC.
 */
import { measureQueuedMemory } from "./queued-memory.bench.js";
import { measureXStateCost } from "./xstate-cost.bench.js";

const MEASURES: Record<string, (input: never) => Promise<unknown>> = {
  "queued-memory": measureQueuedMemory,
  "xstate-cost": measureXStateCost,
};

async function main(): Promise<void> {
  const { measure, input } = JSON.parse(process.env["BENCH_MEASURE"] ?? "{}") as {
    measure: string;
    input: never;
  };
  process.on("disconnect", () => process.exit(0));
  const run = MEASURES[measure];
  try {
    if (!run) throw new Error(`unknown measure "${measure}"`);
    process.send?.({ result: await run(input) });
  } catch (error) {
    process.send?.({ error: error instanceof Error ? error.message : String(error) });
  }
}

void main();
