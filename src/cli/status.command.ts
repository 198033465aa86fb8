/** `fastagentic status`: the workers on a transport, the depth of their queues, their throughput. */
import Table from "cli-table3";
import { encode } from "../codec.js";
import { queuesServedBy, subjects } from "../names.js";
import { TransportWorkerRegistry } from "../registry.js";
import type { WorkerInfo } from "../types.js";
import { type TransportFlags, transportOf } from "./shared-options.js";

export interface StatusFlags extends TransportFlags {
  waitMs?: number;
  json?: boolean;
}

export async function statusCommand(flags: StatusFlags): Promise<number> {
  const transport = transportOf(flags, "fastagentic status");
  const registry = new TransportWorkerRegistry(transport);
  await registry.start();
  try {
    await transport.publish(subjects.control, encode({ v: 1, kind: "ping" }, transport.maxPayloadBytes));
    await new Promise((r) => setTimeout(r, flags.waitMs ?? 1000));
    const workers = registry.list();
    const queueName = flags.queue ?? "default";
    const queues = new Set<string>();
    for (const w of workers) for (const q of queuesServedBy(queueName, w.types, w.tags)) queues.add(q);
    const depths: Record<string, number> = {};
    for (const q of [...queues].sort()) depths[q] = await transport.depth(q);
    const throughput = workers.reduce((sum, w) => sum + rate(w), 0);
    if (flags.json) {
      console.log(JSON.stringify({ workers, queues: depths, throughputPerSecond: throughput }, null, 2));
      return 0;
    }
    const table = new Table({
      head: ["worker", "pid@host", "status", "tasks", "done", "failed", "types", "tags"],
    });
    for (const w of workers) {
      table.push([
        w.id,
        `${w.pid}@${w.hostname}`,
        w.status,
        `${w.currentTasks}/${w.maxConcurrentTasks}`,
        w.totalCompleted,
        w.totalFailed,
        w.types.join(","),
        w.tags.join(","),
      ]);
    }
    console.log(workers.length > 0 ? table.toString() : "no workers heartbeating on this transport");
    const q = new Table({ head: ["queue", "waiting"] });
    for (const [name, depth] of Object.entries(depths)) q.push([name, depth]);
    if (queues.size > 0) console.log(q.toString());
    console.log(`throughput: ${throughput.toFixed(1)} tasks/s (lifetime average of the workers listed)`);
    return 0;
  } finally {
    await registry.stop();
    await transport.close();
  }
}

function rate(w: WorkerInfo): number {
  return w.uptimeSeconds > 0 ? w.totalCompleted / w.uptimeSeconds : 0;
}
