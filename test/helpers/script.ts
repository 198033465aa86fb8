/**
 * A TypeScript script run as a real process (`node --import tsx <script>` from the repository
 * root), its output kept and waited on, bounded by the hang guard.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { deferred, HANG_GUARD_MS } from "./async.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface ScriptRun {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the first match of `pattern` in stdout. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  /** Resolves once the process exited and its output was read to the end. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function runScript(script: string, env: Record<string, string> = {}): ScriptRun {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: ROOT,
    env: { ...process.env, FASTAGENTIC_LOG_LEVEL: "error", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const watchers: Array<() => void> = [];
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    for (const w of [...watchers]) w();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    // "close", not "exit": the last of the output has been read by then.
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    output: () => `${stdout}\n--- stderr ---\n${stderr}`,
    exit,
    waitFor(pattern) {
      const found = deferred<RegExpExecArray>();
      const check = () => {
        const m = pattern.exec(stdout);
        if (m) found.resolve(m);
      };
      watchers.push(check);
      check();
      const guard = setTimeout(
        () => found.reject(new Error(`hang guard: no ${pattern} in the output:\n${stdout}\n${stderr}`)),
        HANG_GUARD_MS,
      );
      void exit.then(() => {
        check();
        found.reject(new Error(`exited without printing ${pattern}:\n${stdout}\n${stderr}`));
      });
      return found.promise.finally(() => clearTimeout(guard));
    },
  };
}
