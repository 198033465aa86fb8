/**
 * Runs a heap measure in a fresh process with `--expose-gc` (a clean heap, and `global.gc` to
 * settle it before each reading). The child answers once over IPC; it is killed if it does not.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export async function runInGcChild<T>(
  measure: string,
  input: unknown,
  timeoutMs = 180_000,
): Promise<T | { error: string }> {
  const child = spawn(process.execPath, ["--expose-gc", "--import", "tsx", "bench/measures/gc-child.ts"], {
    cwd: ROOT,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, BENCH_MEASURE: JSON.stringify({ measure, input }) },
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise<T | { error: string }>((resolve) => {
      timer = setTimeout(() => resolve({ error: `no result within ${timeoutMs} ms` }), timeoutMs);
      child.on("message", (m: { result?: T; error?: string }) => {
        resolve(m.error !== undefined ? { error: m.error } : (m.result as T));
      });
      child.once("exit", (code) => resolve({ error: `the measure process exited with code ${code}` }));
    });
  } finally {
    clearTimeout(timer);
    child.kill("SIGKILL");
  }
}
