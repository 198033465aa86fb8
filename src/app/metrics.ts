/**
 * Prometheus metrics of one coordinator, in a prom-client Registry of their own (never the global
 * one, so several coordinators, or the application's own metrics, do not collide). Gauges and
 * counters are read from the coordinator when scraped; task latencies are observed as tasks finish.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Coordinator } from "../coordinator.js";
import { checked, intIn } from "../limits.js";
import { WorkerStatus } from "../types.js";

export interface CoordinatorMetricsOptions {
  /** Prefix of every metric name. Default "fastagentic_". */
  prefix?: string;
  /** Buckets (seconds) of the latency histograms. */
  buckets?: number[];
  /** Labels added to every metric (e.g. { service: "agents" }). */
  defaultLabels?: Record<string, string>;
  /**
   * Distinct task types given a `type` label of their own (the first ones seen); the others are
   * counted under `type="(other)"`, so the metrics cannot grow without bound. Default 100.
   */
  maxTypeLabels?: number;
}

/** The `type` label of the task types past `maxTypeLabels` (no task type can be named so). */
export const OTHER_TYPES_LABEL = "(other)";

export const DEFAULT_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

const CUMULATIVE = ["submitted", "completed", "failed", "cancelled", "timeout", "retried"] as const;

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly stopObserving: () => void;

  constructor(coordinator: Coordinator, options: CoordinatorMetricsOptions = {}) {
    const p = options.prefix ?? "fastagentic_";
    const registers = [this.registry];
    if (options.defaultLabels) this.registry.setDefaultLabels(options.defaultLabels);
    const stats = () => coordinator.getStats();

    new Gauge({
      name: `${p}queue_depth`,
      help: "Tasks waiting to run (pending or queued) among those this coordinator submitted.",
      labelNames: ["queue"],
      registers,
      collect() {
        const s = stats();
        this.set({ queue: s.queue.name }, s.queue.queueSize);
      },
    });
    new Gauge({
      name: `${p}queue_max_size`,
      help: "The queue's maxQueueSize: submits beyond it are refused (HTTP 503).",
      labelNames: ["queue"],
      registers,
      collect() {
        const s = stats();
        this.set({ queue: s.queue.name }, s.queue.maxQueueSize);
      },
    });
    new Gauge({
      name: `${p}tasks`,
      help: "Tasks in each live status now (queued, running).",
      labelNames: ["status"],
      registers,
      collect() {
        const s = stats();
        this.set({ status: "queued" }, s.queued);
        this.set({ status: "running" }, s.running);
      },
    });
    new Counter({
      name: `${p}tasks_total`,
      help: "Tasks submitted, and finished by outcome (completed, failed, cancelled, timeout); retried attempts.",
      labelNames: ["status"],
      registers,
      collect() {
        const s = stats();
        this.reset();
        for (const status of CUMULATIVE) this.inc({ status }, s[status]);
      },
    });
    new Gauge({
      name: `${p}workers`,
      help: "Workers heartbeating on the transport (this process's and others'), by status.",
      labelNames: ["status"],
      registers,
      async collect() {
        const counts = new Map<string, number>(Object.values(WorkerStatus).map((s) => [s, 0]));
        for (const w of await coordinator.getWorkers()) counts.set(w.status, (counts.get(w.status) ?? 0) + 1);
        for (const [status, n] of counts) this.set({ status }, n);
      },
    });
    new Counter({
      name: `${p}worker_restarts_total`,
      help: "Local workers replaced by the supervisor after they died.",
      registers,
      collect() {
        this.reset();
        this.inc(stats().workers.restarts);
      },
    });
    new Counter({
      name: `${p}duplicate_runs_total`,
      help:
        "Duplicate runs of a task: seen_by=coordinator, a run started for a task already running elsewhere or " +
        "finished (its tasks); seen_by=workers, runs of a delivery that came before without an outcome " +
        "(every worker on the transport); outcome_ignored, a second outcome of a finished task.",
      labelNames: ["seen_by"],
      registers,
      collect() {
        const s = stats();
        this.reset();
        this.inc({ seen_by: "coordinator" }, s.reruns);
        this.inc({ seen_by: "workers" }, s.workers.redeliveredRuns);
        this.inc({ seen_by: "outcome_ignored" }, s.duplicates);
      },
    });
    new Counter({
      name: `${p}finished_redeliveries_skipped_total`,
      help:
        "Redeliveries of tasks whose outcome was already recorded, not run again (NATS: the record of " +
        "finished tasks); ran_after_recorded: runs whose outcome found another recorded first.",
      labelNames: ["kind"],
      registers,
      collect() {
        const s = stats();
        this.reset();
        this.inc({ kind: "skipped" }, s.workers.skippedFinished);
        this.inc({ kind: "ran_after_recorded" }, s.workers.ranAfterRecorded);
      },
    });
    new Gauge({
      name: `${p}abandoned_handlers`,
      help:
        "Handlers still running after their timeout or cancellation (they ignore ctx.signal), on every " +
        "worker on the transport; past maxAbandonedHandlers a worker is replaced.",
      registers,
      collect() {
        this.set(stats().workers.clusterAbandonedHandlers);
      },
    });
    new Counter({
      name: `${p}abandoned_handlers_total`,
      help: "Handlers of this coordinator's own workers abandoned after their timeout or cancellation.",
      registers,
      collect() {
        this.reset();
        this.inc(stats().workers.totalAbandoned);
      },
    });
    const buckets = options.buckets ?? DEFAULT_LATENCY_BUCKETS;
    const latency = new Histogram({
      name: `${p}task_latency_seconds`,
      help: "Time from submit to outcome of finished tasks, by type and outcome.",
      labelNames: ["type", "status"],
      buckets,
      registers,
    });
    const run = new Histogram({
      name: `${p}task_run_seconds`,
      help: "Time from start to outcome of finished tasks that ran, by type and outcome.",
      labelNames: ["type", "status"],
      buckets,
      registers,
    });
    const maxTypes = checked(
      "CoordinatorMetricsOptions.maxTypeLabels",
      options.maxTypeLabels ?? 100,
      intIn(1, 10_000),
    );
    const typeLabels = new Set<string>();
    const typeLabel = (type: string): string => {
      if (typeLabels.has(type)) return type;
      if (typeLabels.size >= maxTypes) return OTHER_TYPES_LABEL;
      typeLabels.add(type);
      return type;
    };
    this.stopObserving = coordinator.queue.onTaskFinished((task) => {
      if (task.completedAt === undefined) return;
      const labels = { type: typeLabel(task.type), status: task.status };
      latency.observe(labels, Math.max(0, task.completedAt - task.createdAt) / 1000);
      if (task.startedAt !== undefined)
        run.observe(labels, Math.max(0, task.completedAt - task.startedAt) / 1000);
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics in the Prometheus text format. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Stops observing the coordinator's tasks. */
  close(): void {
    this.stopObserving();
  }
}
