/**
 * `fastagentic worker --processes N`: N worker processes under one supervisor (the supervisor
 * machine, as in OTP): a child that dies, SIGKILL included, or exits non-zero (its pool gave up) is
 * replaced with back-off, within the restart intensity; past it the supervisor stops the others
 * and exits 1, for systemd or Kubernetes to act. A child that exits 0 (drained) is not restarted
 * with `restart: "transient"` (the default), and once every child has, the supervisor exits 0;
 * `"permanent"` restarts it anyway. SIGTERM/SIGINT are passed on: children drain, then the
 * supervisor exits 0.
 */
import { type ChildProcess, fork } from "node:child_process";
import { createActor } from "xstate";
import { type RestartType, supervisorMachine } from "../../actors/supervisor.machine.js";
import type { RestartIntensity } from "../config.js";
import type { Logger } from "../logger.js";

export interface ProcessSupervisorOptions {
  processes: number;
  /** The CLI script and its arguments for one child (without --processes). */
  script: string;
  args: string[];
  intensity: RestartIntensity;
  /** Default "transient": a child that exits 0 is not replaced. */
  restart?: RestartType;
  logger: Logger;
}

export async function superviseProcesses(options: ProcessSupervisorOptions): Promise<number> {
  const children = new Map<string, ChildProcess>();
  let seq = 0;
  let stopping = false;
  let exitCode = 0;
  let finish!: (code: number) => void;
  const finished = new Promise<number>((r) => {
    finish = r;
  });

  /** Restarts asked for and not yet done (a child count of 0 then is not the end). */
  let pendingRestarts = 0;
  const maybeFinish = () => {
    if (children.size === 0 && (stopping || pendingRestarts === 0)) finish(exitCode);
  };

  const spawnChild = () => {
    const id = `child-${++seq}`;
    const child = fork(options.script, options.args, {
      env: { ...process.env, FASTAGENTIC_SUPERVISED: "1" },
      stdio: "inherit",
      execArgv: process.execArgv,
    });
    children.set(id, child);
    options.logger.info({ child: id, pid: child.pid }, "worker process started");
    child.once("exit", (code, signal) => {
      children.delete(id);
      if (stopping) return maybeFinish();
      const abnormal = signal !== null || code !== 0;
      const reason = signal ? `killed by ${signal}` : `exited with code ${code}`;
      if (abnormal) options.logger.warn({ child: id, pid: child.pid, reason }, "worker process died");
      else options.logger.info({ child: id, pid: child.pid }, "worker process exited cleanly");
      supervisor.send({ type: "CHILD_EXITED", childId: id, at: Date.now(), reason, abnormal });
      maybeFinish(); // every child drained and none to restart: done, exit 0
    });
  };

  const supervisor = createActor(
    supervisorMachine.provide({
      actions: {
        restartChild: (_, { delayMs }) => {
          pendingRestarts++;
          setTimeout(() => {
            pendingRestarts--;
            if (!stopping) spawnChild();
            else maybeFinish();
          }, delayMs);
        },
        escalate: (_, { reason }) => {
          options.logger.error({ reason }, "too many worker process deaths; giving up");
          console.error(`fastagentic: worker processes keep dying (${reason}); stopping.`);
          exitCode = 1;
          shutdown("SIGTERM");
        },
      },
    }),
    { input: { ...options.intensity, restart: options.restart ?? "transient" } },
  ).start();

  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    supervisor.send({ type: "STOP" });
    for (const child of children.values()) child.kill(signal);
    maybeFinish();
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGTERM"));

  for (let i = 0; i < options.processes; i++) spawnChild();
  return finished;
}
