/**
 * What the dashboard page shows, aggregated on the server and pushed over Server-Sent Events: one
 * `tick` per interval for every page (serialized once), whatever the task rate. Per task, the
 * coordinator pays one O(1) update (TaskWindow, a ring of recent tasks); everything else is
 * sampled per tick, and only while a page is connected. Slow samples (queue depths, dead letters,
 * providers) run in the background with a time limit: a broker that is down makes them report
 * their error while workers, stats and charts go on.
 */
import type { ServerResponse } from "node:http";
import type { Coordinator } from "../../coordinator.js";
import { describeThrown } from "../../errors.js";
import type { Task, WorkerInfo } from "../../types.js";
import type { DashboardProvider } from "./dashboard-provider.js";
import { TaskWindow, type WindowPoint } from "./task-window.js";

export interface DashboardFeedOptions {
  /** How often pages get a tick. Default 1000 ms. */
  intervalMs: number;
  /** Seconds of throughput and latency history kept. Default 900 (15 minutes). */
  historySeconds: number;
  /** Pages connected at once at most (more get 503). Default 32. */
  maxClients: number;
  /** Finished tasks remembered for the task list. Default 500. */
  recentTasks: number;
  providers: readonly DashboardProvider[];
  /** A page whose socket holds this many bytes unsent is skipped (30 ticks in a row: dropped). Default 512 KiB. */
  maxBufferedBytes?: number;
}

export interface TaskSummary {
  id: string;
  type: string;
  status: string;
  priority: number;
  createdAt: number;
  startedAt?: number;
  completedAt?: number;
  workerId?: string;
  attempts: number;
  error?: string;
}

interface Sample<T> {
  ok: boolean;
  at: number;
  value?: T;
  error?: string;
}

interface Client {
  res: ServerResponse;
  skipped: number;
}

interface ScalingEvent {
  at: number;
  kind: string;
  text: string;
}

const SLOW_SAMPLE_MS = 3000;
const SAMPLE_TIMEOUT_MS = 2500;
/** A page whose socket holds this much unsent is skipped; after MAX_SKIPPED ticks in a row, dropped. */
const MAX_BUFFERED_BYTES = 512 * 1024;
const MAX_SKIPPED = 30;
const MAX_QUEUES = 200;
const MAX_EVENTS = 200;
const TASKS_PER_TICK = 40;

export class DashboardFeed {
  readonly window: TaskWindow;
  private readonly recent: Task[] = [];
  private recentHead = 0;
  private readonly events: ScalingEvent[] = [];
  private readonly clients = new Set<Client>();
  private timer?: ReturnType<typeof setInterval>;
  private lastSecond = 0;
  private lastEvent = 0;
  private knownWorkers = new Map<string, WorkerInfo>();
  private queues: Sample<Array<{ name: string; total: number; byPriority?: Record<number, number> }>> = {
    ok: false,
    at: 0,
  };
  private deadLetters: Sample<{ total: number; byQueue: Record<string, number> }> = { ok: false, at: 0 };
  private providerData = new Map<string, Sample<unknown>>();
  private sampling = false;
  private readonly detach: Array<() => void> = [];

  constructor(
    private readonly coordinator: Coordinator,
    readonly options: DashboardFeedOptions,
  ) {
    this.window = new TaskWindow(options.historySeconds, Date.now);
    this.detach.push(
      coordinator.queue.onTaskFinished((task) => {
        this.window.add(task);
        if (this.recent.length < options.recentTasks) this.recent.push(task);
        else {
          this.recent[this.recentHead] = task;
          this.recentHead = (this.recentHead + 1) % options.recentTasks;
        }
      }),
    );
    const onScaled = ({ from, to }: { from: number; to: number }) =>
      this.note("scaled", `workers ${from} → ${to}`);
    const onDead = (w: WorkerInfo) =>
      this.note("dead", `worker ${w.id} (pid ${w.pid}@${w.hostname}) missed its heartbeats`);
    coordinator.on("scaled", onScaled);
    coordinator.on("worker.dead", onDead);
    this.detach.push(() => coordinator.off("scaled", onScaled));
    this.detach.push(() => coordinator.off("worker.dead", onDead));
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Adds a page (its response is an open event stream); false when the page limit is reached. */
  attach(res: ServerResponse): boolean {
    if (this.clients.size >= this.options.maxClients) return false;
    const client: Client = { res, skipped: 0 };
    this.clients.add(client);
    res.on("close", () => {
      this.clients.delete(client);
      if (this.clients.size === 0) this.stopTicking();
    });
    const hello = {
      intervalMs: this.options.intervalMs,
      historySeconds: this.options.historySeconds,
      queue: this.coordinator.config.queueName,
      transport: this.coordinator.transport.kind,
      points: this.window.points(Math.floor(Date.now() / 1000) - this.options.historySeconds),
      events: this.events,
      providers: this.options.providers.map((p) => ({
        name: p.name,
        title: p.title,
        lookup: p.lookup !== undefined,
        summary: p.summary !== undefined,
      })),
    };
    this.write(client, `event: hello\ndata: ${JSON.stringify(hello)}\n\n`);
    this.startTicking();
    void this.tick(client);
    return true;
  }

  /** Recent and open tasks, newest first, filtered. */
  tasks(filter: { status?: string; type?: string; limit: number }): TaskSummary[] {
    const out: TaskSummary[] = [];
    const wanted = (t: Task) =>
      (filter.status === undefined || t.status === filter.status) &&
      (filter.type === undefined || t.type === filter.type);
    for (const t of this.coordinator.queue.openTasks(filter.limit * 4)) {
      if (out.length >= filter.limit) return out;
      if (wanted(t)) out.push(summaryOf(t));
    }
    const n = this.recent.length;
    for (let k = 1; k <= n && out.length < filter.limit; k++) {
      const t = this.recent[(this.recentHead - k + n * 2) % n] as Task;
      if (wanted(t)) out.push(summaryOf(t));
    }
    return out;
  }

  close(): void {
    this.stopTicking();
    for (const d of this.detach.splice(0)) d();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  private note(kind: string, text: string): void {
    this.events.push({ at: Date.now(), kind, text });
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
  }

  private startTicking(): void {
    if (this.timer) return;
    this.lastSecond = Math.floor(Date.now() / 1000) - 1;
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
    this.timer.unref();
  }

  private stopTicking(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Builds one tick and sends it to every page (or to one, when it just connected). */
  private async tick(only?: Client): Promise<void> {
    try {
      const now = Date.now();
      const workers = await this.coordinator.getWorkers();
      this.diffWorkers(workers);
      if (!this.sampling && now - this.queues.at > SLOW_SAMPLE_MS) void this.sampleSlow();
      const points: WindowPoint[] = only ? [] : this.window.points(this.lastSecond + 1);
      if (!only && points.length > 0) this.lastSecond = points[points.length - 1]?.[0] ?? this.lastSecond;
      const events = this.events.filter((e) => e.at > this.lastEvent);
      if (!only && events.length > 0) this.lastEvent = events[events.length - 1]?.at ?? this.lastEvent;
      const stats = this.coordinator.getStats();
      const body = {
        at: now,
        state: stats.state,
        transportState: this.coordinator.transport.state,
        stats: {
          running: stats.running,
          queued: stats.queued,
          submitted: stats.submitted,
          completed: stats.completed,
          failed: stats.failed,
          timeout: stats.timeout,
          cancelled: stats.cancelled,
          retried: stats.retried,
          scaling: stats.scaling,
        },
        workers: workers.slice(0, 500).map(workerRow),
        workerCount: workers.length,
        queues: this.queues,
        deadLetters: this.deadLetters,
        providers: Object.fromEntries(this.providerData),
        points,
        events: only ? [] : events,
        tasks: this.tasks({ limit: TASKS_PER_TICK }),
      };
      const frame = `event: tick\ndata: ${JSON.stringify(body)}\n\n`;
      if (only) this.write(only, frame);
      else for (const c of this.clients) this.write(c, frame);
    } catch (error) {
      const frame = `event: problem\ndata: ${JSON.stringify({ error: describeThrown(error) })}\n\n`;
      for (const c of only ? [only] : this.clients) this.write(c, frame);
    }
  }

  /** Writes to a page unless its socket is backed up (a page that does not read is dropped). */
  private write(client: Client, frame: string): void {
    const res = client.res;
    if (res.destroyed || res.writableEnded) return;
    if (res.writableLength > (this.options.maxBufferedBytes ?? MAX_BUFFERED_BYTES)) {
      if (++client.skipped >= MAX_SKIPPED) res.destroy();
      return;
    }
    client.skipped = 0;
    res.write(frame);
  }

  private diffWorkers(workers: WorkerInfo[]): void {
    const now = new Map(workers.map((w) => [w.id, w]));
    if (this.knownWorkers.size > 0 || this.events.length > 0) {
      for (const [id, w] of now)
        if (!this.knownWorkers.has(id))
          this.note("joined", `worker ${id} joined (pid ${w.pid}@${w.hostname})`);
      for (const [id] of this.knownWorkers) if (!now.has(id)) this.note("left", `worker ${id} left`);
    }
    this.knownWorkers = now;
  }

  /** Queue depths, dead-letter counts and providers' summaries, each bounded in time. */
  private async sampleSlow(): Promise<void> {
    this.sampling = true;
    try {
      const transport = this.coordinator.transport;
      const [queues, dead] = await Promise.all([
        sample(async () => {
          const names = (await this.coordinator.deadLetters.workQueues()).slice(0, MAX_QUEUES);
          return Promise.all(
            names.map(async (name) => {
              const byPriority = transport.depthByPriority
                ? await transport.depthByPriority(name)
                : undefined;
              const total =
                byPriority && Object.keys(byPriority).length > 0
                  ? Object.values(byPriority).reduce((a, b) => a + b, 0)
                  : await transport.depth(name);
              return byPriority && Object.keys(byPriority).length > 0
                ? { name, total, byPriority }
                : { name, total };
            }),
          );
        }),
        sample(() => this.coordinator.deadLetters.count()),
      ]);
      this.queues = queues;
      this.deadLetters = dead;
      for (const p of this.options.providers) {
        if (p.summary)
          this.providerData.set(p.name, await sample(() => (p.summary as () => Promise<unknown>)()));
      }
    } finally {
      this.sampling = false;
    }
  }
}

async function sample<T>(fn: () => Promise<T>): Promise<Sample<T>> {
  const at = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const value = await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${SAMPLE_TIMEOUT_MS} ms`)),
          SAMPLE_TIMEOUT_MS,
        );
      }),
    ]);
    return { ok: true, at, value };
  } catch (error) {
    return { ok: false, at, error: describeThrown(error) };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

function workerRow(w: WorkerInfo) {
  return {
    id: w.id,
    pid: w.pid,
    host: w.hostname,
    tags: w.tags,
    types: w.types,
    status: w.status,
    running: w.currentTasks,
    max: w.maxConcurrentTasks,
    uptimeSeconds: w.uptimeSeconds,
    lastHeartbeat: w.lastHeartbeat,
    completed: w.totalCompleted,
    failed: w.totalFailed,
  };
}

export function summaryOf(t: Task): TaskSummary {
  const s: TaskSummary = {
    id: t.id,
    type: t.type,
    status: t.status,
    priority: t.priority,
    createdAt: t.createdAt,
    attempts: t.retryCount + 1,
  };
  if (t.startedAt !== undefined) s.startedAt = t.startedAt;
  if (t.completedAt !== undefined) s.completedAt = t.completedAt;
  if (t.workerId !== undefined) s.workerId = t.workerId;
  if (t.error !== undefined) s.error = t.error.length > 300 ? `${t.error.slice(0, 299)}…` : t.error;
  return s;
}
