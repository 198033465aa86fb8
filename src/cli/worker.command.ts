/**
 * `fastagentic worker`: a WorkerPool process on a transport, or N of them under a supervisor. In
 * each worker process the pool is supervised (src/supervision/pool-supervisor.ts); when that level
 * gives up, the process drains what it can and exits 1, for its supervisor to act.
 */
import type { RestartType } from "../../actors/supervisor.machine.js";
import { systemClock } from "../clock.js";
import { DEFAULT_RESTART_INTENSITY } from "../config.js";
import { stateStoreFromUrl } from "../entities/entity-backends.js";
import { PoolSupervisor } from "../supervision/pool-supervisor.js";
import { WorkerPool } from "../worker-pool.js";
import { loadHandlers } from "./load-handlers.js";
import { superviseProcesses } from "./process-supervisor.js";
import { cliLogger, type TransportFlags, transportOf } from "./shared-options.js";

export interface WorkerFlags extends TransportFlags {
  handlers?: string;
  concurrency?: number;
  tags?: string[];
  minWorkers?: number;
  maxWorkers?: number;
  processes?: number;
  maxRestarts?: number;
  restartPeriodMs?: number;
  heartbeatMs?: number;
  stallTimeoutMs?: number;
  stateStore?: string;
  entityFailoverMs?: number;
  /** What --processes does with a child that exits 0: "transient" (default) lets it go. */
  restart?: RestartType;
}

export async function workerCommand(flags: WorkerFlags): Promise<number> {
  const logger = cliLogger();
  // Checked before anything is forked or loaded: a bad transport fails at once, with exit 2.
  const transport = transportOf(flags, "fastagentic worker");
  const intensity = {
    maxRestarts: flags.maxRestarts ?? DEFAULT_RESTART_INTENSITY.maxRestarts,
    periodMs: flags.restartPeriodMs ?? DEFAULT_RESTART_INTENSITY.periodMs,
  };
  if ((flags.processes ?? 1) > 1) {
    // Check the module once here, so a bad --handlers fails before any process is forked.
    await loadHandlers(flags.handlers);
    const args = process.argv
      .slice(2)
      .filter((a, i, all) => a !== "--processes" && all[i - 1] !== "--processes");
    return superviseProcesses({
      processes: flags.processes as number,
      script: process.argv[1] as string,
      args: args.filter((a) => !a.startsWith("--processes=")),
      intensity,
      restart: flags.restart ?? "transient",
      logger,
    });
  }
  const module = await loadHandlers(flags.handlers);
  const tags = [...new Set([...(flags.tags ?? []), ...module.tags])];
  const maxConcurrentTasks = flags.concurrency ?? module.maxConcurrentTasks;
  const minWorkers = flags.minWorkers ?? 1;
  const pool = new WorkerPool({
    minWorkers,
    maxWorkers: flags.maxWorkers ?? Math.max(minWorkers, 10),
    transport,
    queueName: flags.queue ?? "default",
    logger,
    entities: {
      ...(flags.stateStore === undefined ? {} : { stateStore: stateStoreFromUrl(flags.stateStore) }),
      ...(flags.entityFailoverMs === undefined ? {} : { failoverMs: flags.entityFailoverMs }),
    },
    restartIntensity: intensity,
    config: {
      tags,
      ...(maxConcurrentTasks === undefined ? {} : { maxConcurrentTasks }),
      ...(flags.heartbeatMs === undefined ? {} : { heartbeatIntervalMs: flags.heartbeatMs }),
      ...(flags.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: flags.stallTimeoutMs }),
    },
  });
  module.registerOn(pool);
  let stopping = false;
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  pool.once("stopped", () => void transport.close().finally(stopped));
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`fastagentic worker ${process.pid}: ${signal}: draining (running tasks finish first)`);
    supervisor.stop();
    void pool.stop({ graceful: true });
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  const supervisor = new PoolSupervisor(pool, {
    intensity,
    clock: systemClock,
    logger,
    owner: `fastagentic worker ${process.pid}`,
  });
  supervisor.on("escalated", (error) => {
    console.error(`fastagentic worker ${process.pid}: ${error.message}`);
    process.exitCode = 1;
    stop("escalation");
  });
  await pool.start();
  supervisor.start();
  console.error(
    `fastagentic worker ${process.pid}: ${pool.workerCount} worker(s) on ${transport.kind} serving ` +
      `${[...module.types, ...pool.entityDefinitions.map((d) => `entity ${d.name}`)].join(", ")}` +
      `${tags.length ? ` with tags ${tags.join(", ")}` : ""}`,
  );
  await done;
  return typeof process.exitCode === "number" ? process.exitCode : 0;
}
