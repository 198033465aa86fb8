/**
 * How long a dead worker's tasks take to run elsewhere: a worker process takes `failoverTasks`
 * tasks and never finishes them; a second worker starts; the first is killed with SIGKILL; the
 * clock runs from the kill until every task has completed on the survivor (broker detection plus
 * redelivery: at once on RabbitMQ when the connection drops, after AckWait on JetStream).
 */
import type { BenchConfig } from "../bench-config.js";
import { type PathSpec, within } from "../paths/bench-path.js";
import { pathById } from "../paths/path-registry.js";
import type { FailoverResult } from "../report/bench-results.js";
import { WorkerChild } from "./worker-children.js";

export const FAILOVER_PATHS = ["fa-nats", "fa-amqp"] as const;
/** JetStream redelivers after AckWait (30 s by default): leave room for it. */
const REDELIVERY_BOUND_MS = 90_000;

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function failoverOf(id: string, spec: PathSpec, tasks: number): Promise<FailoverResult> {
  const path = pathById(id);
  const result: FailoverResult = { id, label: path.label, status: "ok" };
  try {
    await within(path.probe(spec), 10_000, "probe");
  } catch (error) {
    return {
      ...result,
      status: "unavailable",
      reason: error instanceof Error ? error.message : String(error),
    };
  }
  const client = await within(path.client(spec), 30_000, "starting the producer");
  const children: WorkerChild[] = [];
  try {
    const victim = await WorkerChild.start(id, { ...spec, hold: true });
    children.push(victim);
    let killedAt = Number.POSITIVE_INFINITY;
    const doneAt: number[] = [];
    const calls = Array.from({ length: tasks }, (_, x) =>
      client.call(x).then((y) => {
        if (y !== x * 2) throw new Error(`wrong result ${y} for x=${x}`);
        doneAt.push(performance.now());
      }),
    );
    for (const c of calls) c.catch(() => {});
    await until(async () => (await victim.started()) >= tasks, 30_000, `the victim taking ${tasks} tasks`);
    children.push(await WorkerChild.start(id, spec));
    killedAt = performance.now();
    victim.kill();
    await within(Promise.all(calls), REDELIVERY_BOUND_MS, `${tasks} tasks completing after the kill`);
    result.tasks = tasks;
    result.firstDoneMs = Math.min(...doneAt) - killedAt;
    result.allDoneMs = Math.max(...doneAt) - killedAt;
  } catch (error) {
    result.status = "failed";
    result.reason = error instanceof Error ? error.message : String(error);
  } finally {
    for (const child of children) child.kill();
    await Promise.all(children.map((c) => within(c.exited, 5000, "worker exit").catch(() => {})));
    await within(client.close(), 20_000, "closing the producer").catch(() => {});
  }
  return result;
}

export async function measureFailover(
  config: BenchConfig,
  specFor: (name: string) => PathSpec,
  log: (line: string) => void,
): Promise<FailoverResult[]> {
  const results: FailoverResult[] = [];
  for (const id of FAILOVER_PATHS) {
    log(`failover: ${id} …`);
    const r = await failoverOf(id, specFor(`${id}-fo`), config.failoverTasks);
    log(
      `  ${r.status}${r.allDoneMs === undefined ? "" : `: all done ${Math.round(r.allDoneMs)} ms after the kill`}`,
    );
    results.push(r);
  }
  return results;
}
