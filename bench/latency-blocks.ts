/**
 * How a path's one-at-a-time latency settles: after the throughput warm-up, consecutive blocks of
 * one-at-a-time calls, each with its p50 and the CPU per call of the producer and the worker
 * process. This is how the latency warm-up of the bench (`--latency-warmup-tasks`) was chosen.
 *   npm run build && TSX_TSCONFIG_PATH=bench/tsconfig.json npx tsx bench/latency-blocks.ts \
 *     [--paths=fa-amqp,raw-amqp] [--blocks=8] [--block=1000] [bench flags: --amqp-url=…, --concurrency=N]
 * Every phase is bounded (60 s); the worker processes are killed when it ends, whatever happens.
 */
import { parseToolArgs, pathSpec, positiveFlag } from "./bench-config.js";
import { runLatency, runThroughput } from "./harness/load-driver.js";
import { runTool, startWorkers, stopWorkers, workersCpuMs } from "./harness/worker-children.js";
import type { PathSpec } from "./paths/bench-path.js";
import { pathById } from "./paths/path-registry.js";

const PHASE_MS = 60_000;

async function blocksOf(id: string, spec: PathSpec, blocks: number, size: number): Promise<string> {
  const path = pathById(id);
  const client = await path.client(spec);
  const workers = path.inProcess ? [] : await startWorkers(id, spec, 1);
  try {
    await runThroughput(client.call, 1000, 1000, PHASE_MS);
    const cells: string[] = [];
    for (let b = 0; b < blocks; b++) {
      const producerBefore = process.cpuUsage();
      const workersBefore = await Promise.all(workers.map((w) => w.cpu()));
      const run = await runLatency(client.call, size, PHASE_MS);
      const producer = process.cpuUsage(producerBefore);
      const worker = await workersCpuMs(workers, workersBefore);
      if (run.done < size) throw new Error(`${id}: ${run.done}/${size} calls done in block ${b + 1}`);
      const producerUs = (producer.user + producer.system) / size;
      cells.push(
        `${run.p50Ms.toFixed(2)} ms (${producerUs.toFixed(0)}+${((worker * 1000) / size).toFixed(0)} µs)`,
      );
    }
    return `${path.label}: ${cells.join(" → ")}`;
  } finally {
    await stopWorkers(workers);
    await client.close();
  }
}

async function main(): Promise<void> {
  const { own, config } = parseToolArgs(process.argv.slice(2), ["paths", "blocks", "block"]);
  const paths = (own.get("paths") ?? "fa-amqp,raw-amqp").split(",").filter(Boolean);
  const blocks = positiveFlag(own, "blocks", 8);
  const size = positiveFlag(own, "block", 1000);
  const runId = `blocks-${Date.now().toString(36)}`;
  console.log(`p50 (producer + worker CPU per call) of ${blocks} consecutive blocks of ${size} calls:`);
  for (const id of paths) console.log(await blocksOf(id, pathSpec(config, runId, id), blocks, size));
}

runTool(main);
