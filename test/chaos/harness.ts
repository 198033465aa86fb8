/**
 * The chaos tests' machinery: worker processes started from the CLI (each in a process group of
 * its own, so a supervisor's children are killed with it), the ledger they write, a pure-client
 * Coordinator in the test process, and the figures of a run. Every wait here resolves on
 * something that happens (a ledger line, a process's output or exit, an event) and fails after a
 * generous hang guard; nothing waits on a timer for synchronisation.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  type FSWatcher,
  fstatSync,
  openSync,
  readSync,
  watch,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  Coordinator,
  type CoordinatorConfigInput,
  deadLetterQueueOf,
  type TaskResult,
  type Transport,
  transportFromUrl,
  WaitTimeoutError,
  type WorkerInfo,
} from "fastagentic";
import { decodeTaskEvents, decodeWorkerEvent, type TaskEvent, type WorkerEvent } from "../../src/codec.js";
import { getDefaultLogger, silentLogger } from "../../src/logger.js";
import { queuesServedBy, subjects } from "../../src/names.js";
import { uniqueNamespace } from "../helpers/brokers.js";
import { tapSubscriptions } from "../helpers/tap.js";

export const REPO_DIR = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = join(REPO_DIR, "src/cli/main.ts");
export const LEDGER_HANDLERS = "test/chaos/ledger-handlers.ts";
/** The task types of LEDGER_HANDLERS: a worker declares a queue (and its dead letters) for each. */
export const HANDLER_TYPES = ["work", "poison", "stall", "double", "explode", "slow"] as const;

/** Hang guards: generous, because a shared 2-core machine runs other test files meanwhile. */
export const GUARD_MS = 60_000;
export const RESULTS_GUARD_MS = 90_000;

export interface BrokerTarget {
  name: "NATS" | "RabbitMQ" | "RabbitMQ quorum";
  url: string;
  /** Adapter options of the CLI workers (`--transport-options`). */
  workerOptions: Record<string, unknown>;
  /** Adapter options of the test's own transports (the coordinator's: it also cleans up). */
  clientOptions: Record<string, unknown>;
  /** Worker options for the SIGSTOP case (RabbitMQ: a short heartbeat, so a frozen peer is noticed). */
  freezeOptions?: Record<string, unknown>;
  /** Client options for the broker restart case (submits that wait out the outage). */
  restartClientOptions?: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Waiting on conditions

/** Something that can be waited on: `check()` is re-run every time `changed()` is called. */
class Condition {
  private waiters: Array<{ check: () => boolean; resolve: () => void }> = [];

  changed(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }

  until(check: () => boolean, what: string, guardMs = GUARD_MS, describe?: () => string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(
          new Error(`hang guard (${guardMs} ms): waited for ${what}${describe ? `; ${describe()}` : ""}`),
        );
      }, guardMs);
      this.waiters.push(waiter);
    });
  }
}

/** Resolves `promise`, or rejects after `guardMs` saying what it waited for. */
export function guard<T>(promise: Promise<T>, what: string, guardMs = GUARD_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang guard (${guardMs} ms): waited for ${what}`)), guardMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Re-checks a broker-side condition (a queue depth: brokers have no event for it) until it holds,
 * bounded by the hang guard. The pause between checks only spaces the queries out.
 */
export async function eventually<T>(
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  what: string,
  guardMs = GUARD_MS,
): Promise<T> {
  const deadline = Date.now() + guardMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`hang guard (${guardMs} ms): ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---------------------------------------------------------------------------------------------
// The ledger

export interface LedgerLine {
  kind: "start" | "end";
  taskId: string;
  pid: number;
  attempt: number;
  /** Epoch milliseconds. */
  at: number;
}

/**
 * The file the worker processes append `start|end <taskId> <pid> <attempt>` lines to, followed
 * as it grows (inotify through fs.watch, plus a slow re-read in case a notification is missed).
 */
export class Ledger {
  readonly lines: LedgerLine[] = [];
  private readonly fd: number;
  private offset = 0;
  private partial = "";
  private readonly watcher: FSWatcher;
  private readonly rescan: NodeJS.Timeout;
  private readonly condition = new Condition();

  constructor(readonly path: string) {
    writeFileSync(path, "");
    this.fd = openSync(path, "r");
    this.watcher = watch(path, () => this.read());
    this.rescan = setInterval(() => this.read(), 250);
  }

  /** Reads what was appended since the last read (also called before every check). */
  read(): void {
    const size = fstatSync(this.fd).size;
    if (size <= this.offset) return;
    const buffer = Buffer.alloc(size - this.offset);
    const n = readSync(this.fd, buffer, 0, buffer.length, this.offset);
    this.offset += n;
    const text = this.partial + buffer.subarray(0, n).toString("utf8");
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    for (const line of parts) {
      const [kind, taskId, pid, attempt, at] = line.split(" ");
      if ((kind !== "start" && kind !== "end") || taskId === undefined) continue;
      this.lines.push({ kind, taskId, pid: Number(pid), attempt: Number(attempt), at: Number(at) });
    }
    if (parts.length > 0) this.condition.changed();
  }

  until(check: (ledger: this) => boolean, what: string, guardMs = GUARD_MS): Promise<void> {
    this.read();
    return this.condition.until(
      () => check(this),
      what,
      guardMs,
      () => `ledger: ${this.count("start")} starts, ${this.count("end")} ends`,
    );
  }

  count(kind: "start" | "end"): number {
    return this.lines.filter((l) => l.kind === kind).length;
  }

  /** Task ids started by `pid` (and attempt) with no end yet in that same run. */
  running(pid: number): string[] {
    const open = new Map<string, number>();
    for (const l of this.lines) {
      if (l.pid !== pid) continue;
      const key = `${l.taskId} ${l.attempt}`;
      open.set(key, (open.get(key) ?? 0) + (l.kind === "start" ? 1 : -1));
    }
    return [...open].filter(([, n]) => n > 0).map(([key]) => key.split(" ")[0] as string);
  }

  /** Pids that have at least `n` tasks running now. */
  busyPids(n = 1): number[] {
    const pids = new Set(this.lines.map((l) => l.pid));
    return [...pids].filter((pid) => this.running(pid).length >= n);
  }

  starts(taskId: string): LedgerLine[] {
    return this.lines.filter((l) => l.kind === "start" && l.taskId === taskId);
  }

  ends(taskId: string): LedgerLine[] {
    return this.lines.filter((l) => l.kind === "end" && l.taskId === taskId);
  }

  /** Task id → number of lines of that kind. */
  tally(kind: "start" | "end"): Map<string, number> {
    const m = new Map<string, number>();
    for (const l of this.lines) if (l.kind === kind) m.set(l.taskId, (m.get(l.taskId) ?? 0) + 1);
    return m;
  }

  close(): void {
    clearInterval(this.rescan);
    this.watcher.close();
    closeSync(this.fd);
  }
}

// ---------------------------------------------------------------------------------------------
// CLI processes

const liveGroups = new Set<number>();
process.once("exit", () => {
  // Last resort (a crashed test file): no worker process outlives the tests.
  for (const pgid of liveGroups) killGroup(pgid, "SIGKILL");
});

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** Whether a process with this pid exists (and is not a zombie we could still reap). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * One `fastagentic …` command run as `node --import tsx src/cli/main.ts …`, in a process group
 * of its own. Its stdout and stderr are kept, and can be waited on.
 */
export class CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout = "";
  stderr = "";
  exit?: Exit;
  readonly exited: Promise<Exit>;
  private readonly closed: Promise<void>;
  private readonly condition = new Condition();

  constructor(
    readonly args: string[],
    env: Record<string, string> = {},
    /** A command that runs it (`ip netns exec <ns>`: one that execs, so the pid stays node's). */
    wrapper: readonly string[] = [],
  ) {
    const command = [...wrapper, process.execPath, "--import", "tsx", CLI, ...args];
    this.child = spawn(command[0] as string, command.slice(1), {
      cwd: REPO_DIR,
      env: { ...process.env, FASTAGENTIC_LOG_LEVEL: "warn", ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    if (this.child.pid === undefined) throw new Error(`could not start the CLI: ${args.join(" ")}`);
    this.pid = this.child.pid;
    liveGroups.add(this.pid);
    this.child.stdout?.on("data", (chunk: Buffer) => {
      this.stdout += chunk.toString();
      this.condition.changed();
    });
    this.child.stderr?.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString();
      this.condition.changed();
    });
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
        this.condition.changed();
      });
    });
    // Closing stdio can come after "exit" (the output may still be in flight then): "close" is when
    // all of it has been read.
    this.closed = new Promise<void>((resolve) => {
      this.child.once("close", () => {
        resolve();
        this.condition.changed();
      });
    });
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  /** Resolves once the process exited and its output was read to the end (bounded). */
  async waitClosed(guardMs = 10_000): Promise<void> {
    await guard(this.closed, `end of the output of ${this.pid}`, guardMs).catch(() => {});
  }

  /** Resolves once the output matches (`pattern` with the g flag: at least `times` matches). */
  async waitForOutput(pattern: RegExp, what: string, times = 1, guardMs = GUARD_MS): Promise<void> {
    const global = new RegExp(
      pattern.source,
      pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`,
    );
    await this.condition.until(
      () => (this.output.match(global)?.length ?? 0) >= times || this.exit !== undefined,
      what,
      guardMs,
      () => `output so far:\n${this.output.slice(-2000)}`,
    );
    if ((this.output.match(global)?.length ?? 0) < times) {
      throw new Error(
        `${what}: the process exited (${JSON.stringify(this.exit)}) first; output:\n${this.output.slice(-4000)}`,
      );
    }
  }

  /** Pids of the worker processes that announced they serve ("fastagentic worker <pid>: … serving …"). */
  servingPids(): number[] {
    return [...this.stderr.matchAll(/fastagentic worker (\d+): \d+ worker\(s\) on \S+ serving/g)].map((m) =>
      Number(m[1]),
    );
  }

  signal(signal: NodeJS.Signals): void {
    if (this.exit === undefined) process.kill(this.pid, signal);
  }

  waitExit(
    what = `exit of ${this.args.slice(0, 1).join(" ")} ${this.pid}`,
    guardMs = GUARD_MS,
  ): Promise<Exit> {
    return guard(this.exited, what, guardMs);
  }

  /** Kills the whole process group (the process and any child it forked), at once. */
  async destroy(): Promise<void> {
    killGroup(this.pid, "SIGCONT"); // a stopped process must be able to die
    killGroup(this.pid, "SIGKILL");
    await guard(this.exited, `exit of ${this.pid} after SIGKILL`, 10_000).catch(() => {});
    liveGroups.delete(this.pid);
  }
}

/** Runs a CLI command to its end; resolves with its exit and output. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  guardMs = GUARD_MS,
): Promise<Exit & { stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const p = new CliProcess(args, env);
  try {
    const exit = await p.waitExit(`fastagentic ${args.join(" ")}`, guardMs);
    await p.waitClosed(); // "exit" can come before the last of stdout/stderr is read
    return { ...exit, stdout: p.stdout, stderr: p.stderr, ms: Date.now() - started };
  } finally {
    await p.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// One chaos run

export interface WorkerProcessOptions {
  concurrency?: number;
  /** `--processes N` (a supervisor and N children). */
  processes?: number;
  /** Adapter options merged over the target's worker options. */
  transportOptions?: Record<string, unknown>;
  args?: string[];
  /** Another broker URL (a private nats-server). */
  url?: string;
  /** A command prefix that runs the process elsewhere (`ip netns exec <ns>`). */
  wrapper?: readonly string[];
}

export interface Figures {
  submitted: number;
  completed: number;
  failed: number;
  lost: number;
  /** Tasks the ledger shows started more than once (ran twice, at least partly). */
  duplicates: number;
  /** Tasks the ledger shows ended (ran to completion) more than once. */
  ranToEndTwice: number;
  /** Outcomes the coordinator received for a task that already had one, and ignored. */
  secondOutcomesIgnored: number;
  /** Handler runs beyond the first per task (ledger starts), and those the coordinator counted (getStats().reruns). */
  reruns: number;
  rerunsCounted: number;
}

export class ChaosRun {
  readonly namespace: string;
  readonly processes: CliProcess[] = [];
  ledger!: Ledger;
  coordinator!: Coordinator;
  transport!: Transport;
  /**
   * Every task event the coordinator's subscription received, duplicates included (to count
   * outcomes per task independently of its bookkeeping). Tapped, not subscribed apart: on
   * RabbitMQ a task's events go to the inbox of the client that enqueued it, not to every
   * subscriber.
   */
  readonly taskEvents: TaskEvent[] = [];
  /** Every worker event (heartbeats, stopped) seen on the transport. */
  readonly workerEvents: WorkerEvent[] = [];
  /** Workers the coordinator declared dead ("worker.dead"). */
  readonly dead: WorkerInfo[] = [];
  private readonly workerCondition = new Condition();
  private dir = "";

  constructor(
    readonly target: BrokerTarget,
    readonly label: string,
    readonly url = target.url,
  ) {
    this.namespace = uniqueNamespace(`chaos${label.replace(/[^a-z]/gi, "").slice(0, 6)}`);
  }

  async start(
    config: CoordinatorConfigInput = {},
    clientOptions: Record<string, unknown> = {},
  ): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), "fa-chaos-"));
    this.ledger = new Ledger(join(this.dir, "ledger.txt"));
    this.transport = transportFromUrl(this.url, {
      ...this.target.clientOptions,
      ...clientOptions,
      namespace: this.namespace,
    });
    const tapped = tapSubscriptions(this.transport, (m) => {
      if (m.subject !== subjects.taskEvents("default")) return;
      try {
        this.taskEvents.push(...decodeTaskEvents(m.body));
      } catch {
        // not ours to judge here
      }
    });
    this.coordinator = new Coordinator({
      transport: tapped,
      config: { minWorkers: 0, autoScale: false, ...config },
      // FA_CHAOS_LOG=1: the coordinator's own log (FASTAGENTIC_LOG_LEVEL) on stderr, to see why.
      logger: process.env["FA_CHAOS_LOG"] ? getDefaultLogger() : silentLogger,
    });
    this.coordinator.on("worker.dead", (info) => {
      this.dead.push(info);
      this.workerCondition.changed();
    });
    await this.coordinator.start();
    await this.transport.subscribe(subjects.workerEvents, (m) => {
      try {
        this.workerEvents.push(decodeWorkerEvent(m.body));
        this.workerCondition.changed();
      } catch {
        // idem
      }
    });
  }

  /** Starts `fastagentic worker …` and resolves once its worker processes say they serve. */
  async startWorkers(options: WorkerProcessOptions = {}): Promise<CliProcess> {
    const transportOptions = { ...this.target.workerOptions, ...options.transportOptions };
    const args = [
      "worker",
      "--transport",
      options.url ?? this.url,
      "--namespace",
      this.namespace,
      "--handlers",
      LEDGER_HANDLERS,
      "--concurrency",
      String(options.concurrency ?? 4),
      ...(Object.keys(transportOptions).length > 0
        ? ["--transport-options", JSON.stringify(transportOptions)]
        : []),
      ...(options.processes === undefined ? [] : ["--processes", String(options.processes)]),
      ...(options.args ?? []),
    ];
    const p = new CliProcess(args, { CHAOS_LEDGER: this.ledger.path }, options.wrapper);
    this.processes.push(p);
    await p.waitForOutput(/serving/, "the worker process(es) serving", options.processes ?? 1);
    return p;
  }

  /** Resolves when a worker event matching `check` was seen. */
  untilWorkerEvent(check: (e: WorkerEvent) => boolean, what: string, guardMs = GUARD_MS): Promise<void> {
    return this.workerCondition.until(() => this.workerEvents.some(check), what, guardMs);
  }

  /** Resolves when the coordinator declared the worker `workerId` dead. */
  untilDead(workerId: string, guardMs = GUARD_MS): Promise<void> {
    return this.workerCondition.until(
      () => this.dead.some((d) => d.id === workerId),
      `worker.dead for ${workerId}`,
      guardMs,
      () => `declared dead so far: ${this.dead.map((d) => `${d.id}(${d.pid})`).join(", ") || "none"}`,
    );
  }

  /** Submits `count` tasks of `type` (all queued once this resolves); returns their ids. */
  async submit(
    count: number,
    type: string,
    data: (i: number) => unknown,
    options: { retries?: number; priority?: number } = {},
  ): Promise<string[]> {
    const tasks = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        this.coordinator.submitAsync(type, data(i), {
          ...(options.retries === undefined ? {} : { retries: options.retries }),
          ...(options.priority === undefined ? {} : { priority: options.priority as 5 }),
        }),
      ),
    );
    return tasks.map((t) => t.id);
  }

  /** Waits for every task's outcome (each bounded by the hang guard): id → result, or "lost". */
  async outcomes(ids: string[], guardMs = RESULTS_GUARD_MS): Promise<Map<string, TaskResult | "lost">> {
    const entries = await Promise.all(
      ids.map(async (id): Promise<[string, TaskResult | "lost"]> => {
        try {
          return [id, await this.coordinator.waitFor(id, { timeoutMs: guardMs })];
        } catch (error) {
          if (error instanceof WaitTimeoutError) return [id, "lost"];
          throw error;
        }
      }),
    );
    return new Map(entries);
  }

  /** The figures of the run, printed; `ids` are the tasks that had to reach a terminal state. */
  figures(ids: string[], results: Map<string, TaskResult | "lost">): Figures {
    this.ledger.read();
    const starts = this.ledger.tally("start");
    const ends = this.ledger.tally("end");
    const count = (status: string) =>
      ids.filter((id) => (results.get(id) as TaskResult)?.status === status).length;
    const figures: Figures = {
      submitted: ids.length,
      completed: count("completed"),
      failed: count("failed") + count("timeout"),
      lost: ids.filter((id) => results.get(id) === "lost").length,
      duplicates: ids.filter((id) => (starts.get(id) ?? 0) > 1).length,
      ranToEndTwice: ids.filter((id) => (ends.get(id) ?? 0) > 1).length,
      secondOutcomesIgnored: this.coordinator.getStats().duplicates,
      reruns: ids.reduce((n, id) => n + Math.max(0, (starts.get(id) ?? 0) - 1), 0),
      rerunsCounted: this.coordinator.getStats().reruns,
    };
    console.log(
      `[chaos ${this.target.name}] ${this.label}: submitted ${figures.submitted} / completed ${figures.completed} / ` +
        `failed ${figures.failed} / lost ${figures.lost} / duplicates ${figures.duplicates} ` +
        `(ran to the end twice: ${figures.ranToEndTwice}; second outcomes ignored by the coordinator: ` +
        `${figures.secondOutcomesIgnored}; re-runs ${figures.reruns}, counted by the coordinator ${figures.rerunsCounted})`,
    );
    return figures;
  }

  /**
   * Every task has exactly one terminal state: the one waitFor gave is still the task's status
   * (a late or duplicate outcome did not change it), and the coordinator counted each task once.
   */
  async assertOneOutcomeEach(ids: string[], results: Map<string, TaskResult | "lost">): Promise<string[]> {
    const problems: string[] = [];
    for (const id of ids) {
      const r = results.get(id);
      if (r === undefined || r === "lost") {
        problems.push(`${id}: no terminal state (lost)`);
        continue;
      }
      const now = await this.coordinator.getTask(id);
      if (now?.status !== r.status) problems.push(`${id}: waitFor said ${r.status}, now ${now?.status}`);
    }
    const s = this.coordinator.getStats();
    const terminal = s.completed + s.failed + s.cancelled + s.timeout;
    if (terminal !== s.submitted)
      problems.push(`coordinator counted ${terminal} outcomes for ${s.submitted} tasks`);
    return problems;
  }

  /** Terminal outcome events seen on the transport per task (duplicates included). */
  outcomeEvents(taskId: string): TaskEvent[] {
    return this.taskEvents.filter(
      (e) => e.taskId === taskId && (e.kind === "completed" || e.kind === "failed" || e.kind === "timeout"),
    );
  }

  depth(queue: string): Promise<number> {
    return this.transport.depth(queue);
  }

  /**
   * Ends everything: worker processes drained if they still can be (SIGTERM), killed otherwise;
   * the coordinator stopped; the broker objects of the namespace deleted (the transport touches
   * every queue the workers declared, then closes with streamsOnClose "delete" / deleteOnClose).
   */
  async cleanup(): Promise<void> {
    for (const p of this.processes) {
      if (p.exit === undefined) {
        try {
          process.kill(-p.pid, "SIGCONT");
          p.signal("SIGTERM");
        } catch {
          // gone
        }
      }
    }
    await Promise.all(this.processes.map((p) => guard(p.exited, "drain", 20_000).catch(() => {})));
    await Promise.all(this.processes.map((p) => p.destroy()));
    if (this.coordinator) {
      await this.coordinator.stop().catch(() => {});
      // Touch the lanes the worker processes used (the shared one and their profile's), to delete them.
      for (const lane of queuesServedBy("default", HANDLER_TYPES, [])) {
        await this.transport.depth(lane).catch(() => {});
        await this.transport.depth(deadLetterQueueOf(lane)).catch(() => {});
      }
      await this.transport.close().catch(() => {});
    }
    this.ledger?.close();
    if (this.dir && existsSync(this.dir)) await rm(this.dir, { recursive: true, force: true });
  }
}
