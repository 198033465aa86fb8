/** Enums and shapes of the public API (names fixed by API.md; values are the seed's). */

export const TaskPriority = { LOW: 0, NORMAL: 5, HIGH: 10, CRITICAL: 20 } as const;
export type TaskPriority = (typeof TaskPriority)[keyof typeof TaskPriority];

export const TaskStatus = {
  PENDING: "pending",
  QUEUED: "queued",
  RUNNING: "running",
  COMPLETED: "completed",
  FAILED: "failed",
  CANCELLED: "cancelled",
  TIMEOUT: "timeout",
} as const;
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];

export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set<TaskStatus>([
  TaskStatus.COMPLETED,
  TaskStatus.FAILED,
  TaskStatus.CANCELLED,
  TaskStatus.TIMEOUT,
]);

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

export const WorkerStatus = {
  IDLE: "idle",
  BUSY: "busy",
  DRAINING: "draining",
  STOPPED: "stopped",
  ERROR: "error",
} as const;
export type WorkerStatus = (typeof WorkerStatus)[keyof typeof WorkerStatus];

export interface Task {
  id: string;
  type: string;
  data: unknown;
  priority: TaskPriority;
  status: TaskStatus;
  result?: unknown;
  error?: string;
  createdAt: number;
  startedAt?: number;
  completedAt?: number;
  timeoutMs: number;
  retries: number;
  retryCount: number;
  workerId?: string;
  tags: string[];
  metadata: Record<string, unknown>;
}

export interface TaskResult {
  taskId: string;
  status: TaskStatus;
  result?: unknown;
  error?: string;
  durationMs?: number;
  workerId?: string;
}

export interface WorkerInfo {
  id: string;
  status: WorkerStatus;
  currentTasks: number;
  maxConcurrentTasks: number;
  totalCompleted: number;
  totalFailed: number;
  uptimeSeconds: number;
  isAvailable: boolean;
  tags: string[];
  /** Task types this worker has handlers for. */
  types: string[];
  lastHeartbeat: number;
  startedAt: number;
  pid: number;
  hostname: string;
  /** The pool the worker belongs to, when it has one. */
  poolId?: string;
  /** The lane of its profile (src/names.ts `profileLaneOf`), where tasks it serves are moved to. */
  lane?: string;
  /** How often it heartbeats (a coordinator checks it against its workerTimeoutMs). */
  heartbeatIntervalMs?: number;
  /** Handlers still running after their task's outcome (they ignored `ctx.signal`). */
  abandonedHandlers?: number;
  /** Handlers abandoned so far (whether they have ended since or not). */
  totalAbandoned?: number;
  /** Runs of deliveries that had come before without an outcome (duplicate runs, as the worker sees them). */
  redeliveredRuns?: number;
  /** Redeliveries of tasks whose outcome was recorded: not run again (where the transport keeps a record). */
  skippedFinished?: number;
  /** Runs whose outcome found another already recorded (two runs of one task at once). */
  ranAfterRecorded?: number;
}

/** What a handler receives besides the task's data. */
export interface TaskContext {
  taskId: string;
  taskType: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** Aborted when the task times out, is cancelled, or the worker stops without draining. */
  signal: AbortSignal;
  workerId: string;
  metadata: Record<string, unknown>;
  tags: readonly string[];
  /** W3C trace context headers carried with the task (e.g. `traceparent`). */
  headers: Readonly<Record<string, string>>;
  /** Tells the broker the task is still being worked on (long tasks); also sent automatically. */
  progress(): Promise<void>;
}

// biome-ignore lint/suspicious/noExplicitAny: handlers are typed by their users; this is the erased form.
export type TaskHandler<D = any, R = unknown> = (data: D, ctx: TaskContext) => R | Promise<R>;

export interface SubmitOptions {
  priority?: TaskPriority;
  timeoutMs?: number;
  retries?: number;
  tags?: string[];
  metadata?: Record<string, unknown>;
  /** Set your own task id (idempotent submit: the broker drops a re-sent duplicate). */
  id?: string;
  /** W3C trace context; when absent, the active OpenTelemetry context is injected. */
  headers?: Record<string, string>;
}

export interface WaitOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}
