/**
 * Where a path's allocation goes: both ends of the path (producer and worker) in this one process,
 * a throughput run under V8's sampling heap profiler with collected objects kept (the garbage is
 * what costs), then the allocating functions by bytes per round trip.
 *   TSX_TSCONFIG_PATH=bench/tsconfig.json npx tsx bench/alloc-profile.ts --path=fa-nats [--tasks=20000] [--top=30]
 * (after `npm run build`: the paths import the build). Figures are sampled (one sample per 1 KiB
 * allocated on average), so small ones are rough.
 */
import { Session } from "node:inspector/promises";
import { parseToolArgs, pathSpec, positiveFlag } from "./bench-config.js";
import { runThroughput } from "./harness/load-driver.js";
import { runTool } from "./harness/worker-children.js";
import { pathById } from "./paths/path-registry.js";

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

function where(node: SamplingNode): string {
  const f = node.callFrame;
  const url = f.url.replace(/^file:\/\/.*?\/(dist\/)?(src|transports|actors|bench|node_modules)\//, "$2/");
  return `${f.functionName || "(anonymous)"} ${url}:${f.lineNumber + 1}`;
}

async function main(): Promise<void> {
  const { own, config } = parseToolArgs(process.argv.slice(2), ["path", "top"], ["--tasks=20000"]);
  const path = pathById((own.get("path") ?? "fa-nats") as Parameters<typeof pathById>[0]);
  const top = positiveFlag(own, "top", 30);
  const spec = pathSpec(config, Date.now().toString(36), `${path.id}-alloc`);
  const worker = path.inProcess ? undefined : await path.worker(spec);
  const client = await path.client(spec);
  try {
    await runThroughput(client.call, config.warmupTasks, config.inflight, config.phaseTimeoutMs);
    const session = new Session();
    session.connect();
    await session.post("HeapProfiler.startSampling", {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    const run = await runThroughput(client.call, config.tasks, config.inflight, config.phaseTimeoutMs);
    const { profile } = (await session.post("HeapProfiler.stopSampling")) as {
      profile: { head: SamplingNode };
    };
    session.disconnect();
    const self = new Map<string, number>();
    let total = 0;
    const walk = (node: SamplingNode): void => {
      total += node.selfSize;
      self.set(where(node), (self.get(where(node)) ?? 0) + node.selfSize);
      for (const child of node.children) walk(child);
    };
    walk(profile.head);
    console.log(
      `${path.id}: ${run.done} round trips, ${(total / run.done).toFixed(0)} B sampled per round trip (producer and worker together)`,
    );
    for (const [key, bytes] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(
        `${(bytes / run.done).toFixed(0).padStart(6)} B ${((100 * bytes) / total).toFixed(1).padStart(5)}%  ${key}`,
      );
    }
  } finally {
    // The worker first: the producer's close deletes the queues, which a live worker would declare again.
    await worker?.close();
    await client.close();
  }
}

runTool(main);
