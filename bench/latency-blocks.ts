/**
 * How a path's one-at-a-time latency settles: after the throughput warm-up, consecutive blocks of
 * one-at-a-time calls, each with its p50 and the CPU per call of the producer and the worker
 * process. This is how the latency warm-up of the bench (`--latency-warmup-tasks`) was chosen.
 *   npm run build && TSX_TSCONFIG_PATH=bench/tsconfig.json npx tsx bench/latency-blocks.ts \
 *     [--paths=fa-amqp,raw-amqp] [--blocks=8] [--block=1000]
 * Every phase is bounded (60 s); the worker processes are killed when it ends, whatever happens.
 */
import { runLatency, runThroughput } from "./harness/load-driver.js";
import { killAllChildren, startWorkers, stopWorkers, workersCpuMs } from "./harness/worker-children.js";
import type { PathSpec } from "./paths/bench-path.js";
import { pathById } from "./paths/path-registry.js";

const PHASE_MS = 60_000;

function flag(name: string, fallback: string): string {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length) ?? fallback;
}

function count(name: string, fallback: number): number {
  const n = Number(flag(name, String(fallback)));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
}

async function blocksOf(id: string, blocks: number, size: number): Promise<string> {
  const path = pathById(id as Parameters<typeof pathById>[0]);
  const spec: PathSpec = {
    ns: `blocks-${Date.now().toString(36)}-${id}`,
    concurrency: 128,
    natsUrl: process.env["BENCH_NATS_URL"] ?? "nats://127.0.0.1:4222",
    amqpUrl: process.env["BENCH_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672",
    redisUrl: process.env["BENCH_REDIS_URL"] ?? "redis://127.0.0.1:6379",
  };
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
  const paths = flag("paths", "fa-amqp,raw-amqp").split(",").filter(Boolean);
  const blocks = count("blocks", 8);
  const size = count("block", 1000);
  console.log(`p50 (producer + worker CPU per call) of ${blocks} consecutive blocks of ${size} calls:`);
  for (const id of paths) console.log(await blocksOf(id, blocks, size));
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  })
  .finally(() => {
    killAllChildren();
    process.exit();
  });
