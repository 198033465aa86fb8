/** `fastagentic worker`: a WorkerPool process on a transport, or N of them under a supervisor. */
import { DEFAULT_RESTART_INTENSITY } from "../config.js";
import { stateStoreFromUrl } from "../entities/entity-backends.js";
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
}

export async function workerCommand(flags: WorkerFlags): Promise<number> {
  const logger = cliLogger();
  // Checked before anything is forked or loaded: a bad transport fails at once, with exit 2.
  const transport = transportOf(flags, "fastagentic worker");
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
      intensity: {
        maxRestarts: flags.maxRestarts ?? DEFAULT_RESTART_INTENSITY.maxRestarts,
        periodMs: flags.restartPeriodMs ?? DEFAULT_RESTART_INTENSITY.periodMs,
      },
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
    void pool.stop({ graceful: true });
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  pool.on("escalated", (error) => {
    console.error(`fastagentic worker ${process.pid}: ${error.message}`);
    process.exitCode = 1;
    stop("escalation");
  });
  await pool.start();
  console.error(
    `fastagentic worker ${process.pid}: ${pool.workerCount} worker(s) on ${transport.kind} serving ` +
      `${[...module.types, ...pool.entityDefinitions.map((d) => `entity ${d.name}`)].join(", ")}` +
      `${tags.length ? ` with tags ${tags.join(", ")}` : ""}`,
  );
  await done;
  return typeof process.exitCode === "number" ? process.exitCode : 0;
}
