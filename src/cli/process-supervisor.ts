/**
 * `fastagentic worker --processes N`: N worker processes under one supervisor (the supervisor
 * machine, as in OTP): a child that dies, SIGKILL included, is replaced with back-off, within the
 * restart intensity; past it the supervisor stops the others and exits 1. SIGTERM/SIGINT are
 * passed on: children drain, then the supervisor exits 0.
 */
import { type ChildProcess, fork } from "node:child_process";
import { createActor } from "xstate";
import { supervisorMachine } from "../../actors/supervisor.machine.js";
import type { RestartIntensity } from "../config.js";
import type { Logger } from "../logger.js";

export interface ProcessSupervisorOptions {
  processes: number;
  /** The CLI script and its arguments for one child (without --processes). */
  script: string;
  args: string[];
  intensity: RestartIntensity;
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

  const maybeFinish = () => {
    if (stopping && children.size === 0) finish(exitCode);
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
      const reason = signal ? `killed by ${signal}` : `exited with code ${code}`;
      options.logger.warn({ child: id, pid: child.pid, reason }, "worker process died");
      supervisor.send({ type: "CHILD_EXITED", childId: id, at: Date.now(), reason });
    });
  };

  const supervisor = createActor(
    supervisorMachine.provide({
      actions: {
        restartChild: (_, { delayMs }) => {
          setTimeout(() => {
            if (!stopping) spawnChild();
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
    { input: { ...options.intensity } },
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
