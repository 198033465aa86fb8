/**
 * The producer's own code per task, without a broker or a worker: a Coordinator (a pure client)
 * over a stub transport that confirms every enqueue at once and answers each task with a
 * "completed" event, the events of one turn in one batch, as a worker does. Prints the CPU per
 * submit of each round. Under callgrind it gives an instruction count, which a busy machine does
 * not change (two runs of one build differed by about 1 %):
 *   npm run build && TSX_TSCONFIG_PATH=bench/tsconfig.json valgrind --tool=callgrind \
 *     --smc-check=all-non-file node --import tsx bench/producer-loop.ts --rounds=1
 * Flags: [--tasks=50000] [--rounds=8] [--inflight=1000] (a warm-up of 20,000 submits comes first).
 */
import { Coordinator, InMemoryTransport, silentLogger, type Transport } from "fastagentic";
import { subjects } from "../src/names.js";
import { overriding } from "../test/helpers/tap.js";
import { parseToolArgs, positiveFlag } from "./bench-config.js";

interface Sent {
  id: string;
  queue: string;
  data: { x: number };
}

/** The in-memory transport, but enqueues are confirmed and answered at once instead of queued. */
function stubTransport(): Transport {
  const inner = new InMemoryTransport();
  let sent: Sent[] = [];
  let scheduled = false;
  const answer = (): void => {
    scheduled = false;
    const byQueue = new Map<string, string[]>();
    for (const task of sent) {
      const event = JSON.stringify({
        v: 1,
        kind: "completed",
        taskId: task.id,
        at: Date.now(),
        attempt: 1,
        workerId: "stub",
        durationMs: 0,
        result: task.data.x * 2,
      });
      const events = byQueue.get(task.queue) ?? [];
      events.push(event);
      byQueue.set(task.queue, events);
    }
    sent = [];
    for (const [queue, events] of byQueue) {
      const body = events.length === 1 ? events[0] : `{"v":1,"kind":"batch","events":[${events.join(",")}]}`;
      void inner.publish(subjects.taskEvents(queue), Buffer.from(body as string));
    }
  };
  return overriding(inner, {
    kind: "stub", // not "memory": tasks need no local handler
    enqueue: (_queue: string, body: Uint8Array): Promise<void> => {
      sent.push(JSON.parse(Buffer.from(body).toString("utf8")) as Sent);
      if (!scheduled) {
        scheduled = true;
        setImmediate(answer);
      }
      return Promise.resolve();
    },
  });
}

async function main(): Promise<void> {
  const { own } = parseToolArgs(process.argv.slice(2), ["tasks", "rounds", "inflight"]);
  const tasks = positiveFlag(own, "tasks", 50_000);
  const rounds = positiveFlag(own, "rounds", 8);
  const inflight = positiveFlag(own, "inflight", 1000);
  const coordinator = new Coordinator({
    transport: stubTransport(),
    config: { minWorkers: 0, autoScale: false, maxQueueSize: 1_000_000 },
    logger: silentLogger,
  });
  await coordinator.start();
  const run = async (n: number): Promise<void> => {
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < n) {
        const x = next++;
        const y = await coordinator.submit("double", { x });
        if (y !== 2 * x) throw new Error(`wrong result ${String(y)} for x=${x}`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(inflight, n) }, lane));
  };
  try {
    await run(20_000);
    const perTask: string[] = [];
    for (let r = 0; r < rounds; r++) {
      const before = process.cpuUsage();
      await run(tasks);
      const used = process.cpuUsage(before);
      perTask.push(((used.user + used.system) / tasks).toFixed(2));
    }
    console.log(`CPU µs per submit, ${rounds} rounds of ${tasks}: ${perTask.join(" / ")}`);
  } finally {
    await coordinator.stop({ graceful: false });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
