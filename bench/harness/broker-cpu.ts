/**
 * CPU time of the broker processes on this machine, read from /proc (Linux): the durable paths
 * spend as much CPU in the broker as in the clients, so the table shows it beside theirs.
 * Elsewhere, or when the broker runs in another host or container, it reads as unknown.
 */
import { readdirSync, readFileSync } from "node:fs";

const COMMANDS: Record<string, string> = { nats: "nats-server", amqp: "beam.smp", redis: "redis-server" };
/** USER_HZ: /proc reports CPU time in clock ticks, 100 per second on Linux. */
const TICKS_PER_SECOND = 100;

function pidsOf(command: string): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === command) pids.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return pids;
}

function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command (which may contain spaces), from field 3 on: utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / TICKS_PER_SECOND;
}

/** Total CPU ms used so far by the broker's processes; undefined when it cannot be read. */
export function brokerCpuMs(broker: string | undefined): number | undefined {
  const command = broker === undefined ? undefined : COMMANDS[broker];
  if (command === undefined) return undefined;
  const pids = pidsOf(command);
  if (pids.length === 0) return undefined;
  try {
    return pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0);
  } catch {
    return undefined;
  }
}

/** CPU ms so far of each of the broker's processes, by pid (empty when it cannot be read). */
export function brokerCpuByPid(broker: string | undefined): Map<number, number> {
  const command = broker === undefined ? undefined : COMMANDS[broker];
  const byPid = new Map<number, number>();
  if (command === undefined) return byPid;
  for (const pid of pidsOf(command)) {
    try {
      byPid.set(pid, cpuMsOf(pid));
    } catch {
      // the process ended meanwhile
    }
  }
  return byPid;
}

/**
 * The broker's CPU ms between two readings, over the processes alive at both: a broker process
 * that another user of this machine started or stopped meanwhile (a private nats-server of a
 * chaos test) neither adds its start-up nor makes the figure negative. Undefined: none in both.
 */
export function brokerCpuDeltaMs(
  before: Map<number, number>,
  after: Map<number, number>,
): number | undefined {
  let sum = 0;
  let seen = false;
  for (const [pid, ms] of after) {
    const was = before.get(pid);
    if (was === undefined) continue;
    sum += ms - was;
    seen = true;
  }
  return seen ? sum : undefined;
}
