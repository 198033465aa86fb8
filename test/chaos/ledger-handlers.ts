/**
 * The handlers module the chaos tests' worker processes load
 * (`fastagentic worker --handlers test/chaos/ledger-handlers.ts`). Every handler start and end is
 * appended to the ledger named by $CHAOS_LEDGER as one line, `start|end <taskId> <pid> <attempt> <ms>`
 * (the last field: when, in epoch milliseconds, for the reports),
 * with one write(2) on a descriptor opened with O_APPEND: lines from several processes never
 * interleave, and a line is in the file before the next statement runs (so a SIGKILL right after
 * a `start` still leaves it there). Without $CHAOS_LEDGER nothing is recorded (the CLI tests).
 */
import { existsSync, openSync, writeSync } from "node:fs";
import type { TaskContext } from "fastagentic";

const ledgerPath = process.env["CHAOS_LEDGER"];
const ledger = ledgerPath === undefined ? undefined : openSync(ledgerPath, "a");

function record(what: "start" | "end", ctx: TaskContext): void {
  if (ledger !== undefined)
    writeSync(ledger, `${what} ${ctx.taskId} ${process.pid} ${ctx.attempt} ${Date.now()}\n`);
}

/** Resolves after `ms`, or at once when the task is aborted (cancelled, timed out, worker stopping). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

export default {
  /** Stands for real work: `ms` of waiting; returns which process ran it. */
  async work(data: { n?: number; ms?: number }, ctx: TaskContext) {
    record("start", ctx);
    await sleep(data.ms ?? 50, ctx.signal);
    if (ctx.signal.aborted) throw new Error("aborted");
    record("end", ctx);
    return { n: data.n ?? null, pid: process.pid, attempt: ctx.attempt };
  },

  /** A poison task: kills its own worker process on every delivery. */
  async poison(_data: unknown, ctx: TaskContext) {
    record("start", ctx);
    process.kill(process.pid, "SIGKILL");
    await sleep(60_000, ctx.signal); // never reached in practice: SIGKILL is not deferred
    return null;
  },

  /**
   * The supervision tests: blocks its process's event loop for `ms` (CPU-bound work done wrong),
   * so every worker of the process finds itself stalled and leaves.
   */
  async stall(data: { ms: number }, ctx: TaskContext) {
    record("start", ctx);
    const until = Date.now() + data.ms;
    while (Date.now() < until) {
      // busy: no timer, no I/O runs meanwhile
    }
    return { stalled: data.ms };
  },

  /** The CLI tests: a result computed from the data. */
  async double(data: { x: number }) {
    return { doubled: data.x * 2 };
  },

  /** The CLI tests: a task that fails. */
  async explode(data: { message?: string }) {
    throw new Error(data?.message ?? "boom");
  },

  /**
   * The CLI tests: a task that runs until it is told to end — `ms` pass, or the file `until`
   * exists (the test creates it when it is ready: no race with a slow machine) — for the drain tests.
   */
  async slow(data: { ms: number; tag?: string; until?: string }, ctx: TaskContext) {
    record("start", ctx);
    if (data.until === undefined) await sleep(data.ms, ctx.signal);
    else {
      const deadline = Date.now() + data.ms;
      while (!existsSync(data.until) && Date.now() < deadline && !ctx.signal.aborted)
        await sleep(20, ctx.signal);
    }
    record("end", ctx);
    return { slept: data.ms, tag: data.tag ?? null, aborted: ctx.signal.aborted, pid: process.pid };
  },
};
