/**
 * What the dashboard's server side costs the coordinator: the in-memory coordinator (the path
 * where its own work is the whole cost, so any added cost shows most) at full load, in three
 * modes measured in turn in the same run — no dashboard, the dashboard mounted (its per-task
 * aggregation only), and the dashboard with a page connected reading its live feed — best of
 * `rounds` each. The ratios to "no dashboard" are what the ≤ 5% target checks.
 */
import { App, Coordinator, silentLogger } from "fastagentic";

export type DashboardMode = "none" | "mounted" | "page";

export interface DashboardCostResult {
  tasks: number;
  inFlight: number;
  /** Best tasks/s of each mode, and every round's. */
  tasksPerSec: Record<DashboardMode, number>;
  rounds: Record<DashboardMode, number[]>;
  /** tasks/s with the dashboard over tasks/s without (1 = free). */
  mountedRatio: number;
  pageRatio: number;
  /** Ticks the connected page received during its rounds (it must have been live). */
  ticksReceived: number;
}

async function measure(
  mode: DashboardMode,
  tasks: number,
  inFlight: number,
): Promise<{ tps: number; ticks: number }> {
  const coordinator = new Coordinator({
    config: { minWorkers: 1, maxWorkers: 1, autoScale: false, maxQueueSize: 1_000_000 },
    workerConfig: { maxConcurrentTasks: inFlight },
    logger: silentLogger,
  });
  coordinator.handler("double", (data: { x: number }) => data.x * 2);
  const app = mode === "none" ? undefined : new App({ appLogger: silentLogger });
  app?.mountDashboard(coordinator, { path: "/dashboard" });
  await coordinator.start();
  const base = app ? await app.listen({ port: 0 }) : "";
  let ticks = 0;
  const page = new AbortController();
  let reading: Promise<void> | undefined;
  if (mode === "page") {
    const r = await fetch(`${base}/dashboard/events`, { signal: page.signal });
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    reading = (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          ticks += decoder.decode(value).split("event: tick").length - 1;
        }
      } catch {
        // aborted at the end
      }
    })();
  }
  // Warm-up, then the measured run: `inFlight` submits always outstanding.
  await Promise.all(Array.from({ length: inFlight }, (_, i) => coordinator.submit("double", { x: i })));
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < tasks) {
        next++;
        await coordinator.submit("double", { x: next });
      }
    }),
  );
  const tps = tasks / ((performance.now() - started) / 1000);
  page.abort();
  await reading;
  await app?.close();
  await coordinator.stop({ graceful: false });
  return { tps, ticks };
}

export async function measureDashboardCost(options: {
  tasks: number;
  rounds: number;
  log(line: string): void;
}): Promise<DashboardCostResult> {
  const inFlight = 256;
  const modes: DashboardMode[] = ["none", "mounted", "page"];
  const rounds: Record<DashboardMode, number[]> = { none: [], mounted: [], page: [] };
  let ticksReceived = 0;
  for (let round = 1; round <= options.rounds; round++) {
    for (const mode of modes) {
      const { tps, ticks } = await measure(mode, options.tasks, inFlight);
      rounds[mode].push(tps);
      ticksReceived += ticks;
      options.log(`  dashboard cost, round ${round}, ${mode}: ${Math.round(tps)} tasks/s`);
    }
  }
  const best = (m: DashboardMode) => Math.max(...rounds[m]);
  const tasksPerSec = { none: best("none"), mounted: best("mounted"), page: best("page") };
  return {
    tasks: options.tasks,
    inFlight,
    tasksPerSec,
    rounds,
    mountedRatio: tasksPerSec.mounted / tasksPerSec.none,
    pageRatio: tasksPerSec.page / tasksPerSec.none,
    ticksReceived,
  };
}
