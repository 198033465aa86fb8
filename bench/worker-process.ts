/**
 * A worker process of the bench: runs the worker end of one path and answers its parent over IPC.
 *   env BENCH_WORKER = { "path": "fa-nats", "spec": { … } }
 * Messages in: { cmd: "cpu" | "started" | "stop", id }. Out: { type: "ready" | "error" | "reply" }.
 * Exits when the parent goes away, so a crashed bench leaves no workers behind.
 */
import { AllocMeter } from "./harness/alloc-meter.js";
import { type PathSpec, type PathWorker, within } from "./paths/bench-path.js";
import { pathById } from "./paths/path-registry.js";

interface Command {
  cmd: "cpu" | "started" | "stop";
  id: number;
}

function send(message: unknown): void {
  if (process.connected) process.send?.(message);
}

async function main(): Promise<void> {
  const { path, spec } = JSON.parse(process.env["BENCH_WORKER"] ?? "{}") as { path: string; spec: PathSpec };
  process.on("disconnect", () => process.exit(0));
  let worker: PathWorker;
  try {
    worker = await pathById(path).worker(spec);
  } catch (error) {
    send({ type: "error", reason: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }
  let meter: AllocMeter | undefined;
  process.on("message", (message: Command) => {
    if (message.cmd === "cpu") {
      // Allocation is counted from the first sample on (the meter watches every GC from then).
      meter ??= new AllocMeter();
      const allocated = meter.read();
      send({ type: "reply", id: message.id, value: { ...process.cpuUsage(), allocated } });
    } else if (message.cmd === "started") send({ type: "reply", id: message.id, value: worker.started() });
    else if (message.cmd === "stop") {
      // Bounded, so the process exits (and writes its CPU profile, if asked) before the parent kills it.
      void within(worker.close(), 5000, "closing the worker")
        .catch((error: unknown) => process.stderr.write(`worker process ${process.pid}: ${String(error)}\n`))
        .finally(() => {
          send({ type: "reply", id: message.id, value: true });
          process.exit(0);
        });
    }
  });
  send({ type: "ready", pid: process.pid });
}

void main();
