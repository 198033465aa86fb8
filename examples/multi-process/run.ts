/**
 * Runs the whole example on one machine: two worker processes started with the CLI, then the
 * coordinator, then SIGTERM to the workers (they drain and exit 0).
 *   npx tsx examples/multi-process/run.ts nats://127.0.0.1:4222
 *   npx tsx examples/multi-process/run.ts amqp://guest:guest@127.0.0.1:5672
 * On real machines: run `fastagentic worker --transport <url> --handlers ./handlers.js` on each
 * worker machine and the coordinator in your API service, all with the same URL and namespace.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const url = process.argv[2] ?? process.env["FASTAGENTIC_TRANSPORT"] ?? "nats://127.0.0.1:4222";
// A fixed namespace: the broker objects it creates are reused by the next run, not piled up.
const namespace = process.env["FASTAGENTIC_NAMESPACE"] ?? "multiprocess-example";
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const cli = here("../../src/cli/main.ts");
const env = { ...process.env, FASTAGENTIC_TRANSPORT: url, FASTAGENTIC_NAMESPACE: namespace };

const workers: ChildProcess[] = [];
for (let i = 0; i < 2; i++) {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      cli,
      "worker",
      "--handlers",
      here("./handlers.ts"),
      "--namespace",
      namespace,
      "--concurrency",
      "8",
    ],
    { env, stdio: ["ignore", "inherit", "pipe"] },
  );
  workers.push(child);
  // Wait until the worker says it is serving.
  await new Promise<void>((resolve, reject) => {
    let text = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      process.stderr.write(chunk);
      if (text.includes("serving")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`worker exited early with code ${code}`)));
  });
}
try {
  const coordinator = spawn(process.execPath, ["--import", "tsx", here("./coordinator.ts")], {
    env,
    stdio: "inherit",
  });
  const [code] = await once(coordinator, "exit");
  if (code !== 0) throw new Error(`the coordinator exited with code ${code}`);
} finally {
  for (const w of workers) w.kill("SIGTERM");
  const codes = await Promise.all(
    workers.map(async (w) => (w.exitCode ?? (await once(w, "exit"))[0]) as number),
  );
  console.log(`worker processes drained and exited with ${codes.join(", ")}`);
}
