/**
 * Worker processes: spawned with `node --import tsx bench/worker-process.ts`, talked to over IPC,
 * every wait bounded. Every child spawned is remembered and killed when the bench exits, whatever
 * happens (`killAllChildren` in the runner's finally, and on process exit).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { PathSpec } from "../paths/bench-path.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const alive = new Set<ChildProcess>();

process.on("exit", () => {
  for (const child of alive) child.kill("SIGKILL");
});

export interface CpuSample {
  user: number;
  system: number;
  /** Bytes allocated on the worker's V8 heap since its first sample (harness/alloc-meter.ts). */
  allocated?: number;
}

interface Reply {
  type: "ready" | "error" | "reply";
  id?: number;
  value?: unknown;
  reason?: string;
}

export class WorkerChild {
  private seq = 0;
  private readonly waiting = new Map<number, (value: unknown) => void>();
  readonly exited: Promise<number | null>;

  private constructor(readonly process: ChildProcess) {
    this.exited = new Promise((resolve) => process.once("exit", (code) => resolve(code)));
    process.on("message", (m: Reply) => {
      if (m.type !== "reply" || m.id === undefined) return;
      this.waiting.get(m.id)?.(m.value);
      this.waiting.delete(m.id);
    });
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** Starts a worker process for `path` and resolves once its worker is consuming. */
  static async start(path: string, spec: PathSpec, timeoutMs = 30_000): Promise<WorkerChild> {
    // BENCH_PROFILE_DIR=dir: each worker process writes a V8 CPU profile there when it stops.
    const profileDir = process.env["BENCH_PROFILE_DIR"];
    const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
    const child = spawn(process.execPath, [...profile, "--import", "tsx", "bench/worker-process.ts"], {
      cwd: ROOT,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, BENCH_WORKER: JSON.stringify({ path, spec }) },
    });
    alive.add(child);
    child.once("exit", () => alive.delete(child));
    const worker = new WorkerChild(child);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`worker process not ready within ${timeoutMs} ms`)),
          timeoutMs,
        );
        child.on("message", (m: Reply) => {
          if (m.type === "ready") resolve();
          if (m.type === "error") reject(new Error(`worker process: ${m.reason}`));
        });
        child.once("exit", (code) => reject(new Error(`worker process exited (code ${code}) before ready`)));
      });
    } catch (error) {
      child.kill("SIGKILL");
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return worker;
  }

  private ask<T>(cmd: "cpu" | "started" | "stop", timeoutMs = 5000): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`worker process ${this.pid}: no answer to "${cmd}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (value) => {
        clearTimeout(timer);
        resolve(value as T);
      });
      if (!this.process.connected) reject(new Error(`worker process ${this.pid} is gone`));
      else this.process.send({ cmd, id });
    });
  }

  cpu(): Promise<CpuSample> {
    return this.ask<CpuSample>("cpu");
  }

  started(): Promise<number> {
    return this.ask<number>("started");
  }

  /** Asks the worker to close; SIGKILL if it has not exited within `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    void this.ask("stop", timeoutMs).catch(() => {});
    const timer = setTimeout(() => this.process.kill("SIGKILL"), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    this.process.kill("SIGKILL");
  }
}

/** Starts `count` worker processes (one after another: they share two cores with the brokers). */
export async function startWorkers(path: string, spec: PathSpec, count: number): Promise<WorkerChild[]> {
  const workers: WorkerChild[] = [];
  try {
    for (let i = 0; i < count; i++) workers.push(await WorkerChild.start(path, spec));
  } catch (error) {
    await stopWorkers(workers);
    throw error;
  }
  return workers;
}

export async function stopWorkers(workers: readonly WorkerChild[]): Promise<void> {
  await Promise.all(workers.map((w) => w.stop()));
}

export function killAllChildren(): void {
  for (const child of alive) child.kill("SIGKILL");
}

/** Runs a bench tool's main(): prints its error, kills every worker process left, exits. */
export function runTool(main: () => Promise<void>): void {
  main()
    .catch((error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exitCode = 1;
    })
    .finally(() => {
      killAllChildren();
      process.exit();
    });
}

/** CPU time (ms) the workers used since `before` (one sample per worker, same order). */
export async function workersCpuMs(
  workers: readonly WorkerChild[],
  before: readonly CpuSample[],
): Promise<number> {
  const after = await Promise.all(workers.map((w) => w.cpu()));
  let micros = 0;
  after.forEach((a, i) => {
    const b = before[i] as CpuSample;
    micros += a.user - b.user + (a.system - b.system);
  });
  return micros / 1000;
}

/** CPU ms the workers used, and bytes they allocated on their heaps, since `before` (same order). */
export async function workersAlloc(
  workers: readonly WorkerChild[],
  before: readonly CpuSample[],
): Promise<{ bytes: number; cpuMs: number }> {
  const after = await Promise.all(workers.map((w) => w.cpu()));
  let bytes = 0;
  let micros = 0;
  after.forEach((a, i) => {
    const b = before[i] as CpuSample;
    bytes += (a.allocated ?? 0) - (b.allocated ?? 0);
    micros += a.user - b.user + (a.system - b.system);
  });
  return { bytes, cpuMs: micros / 1000 };
}
