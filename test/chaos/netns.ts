/**
 * Network partitions for the chaos tests, with Linux network namespaces: a bridge on the host
 * (the brokers' side, its address the one the namespaces reach the broker at) and, per "host", a
 * namespace joined to the bridge by a veth pair. Cutting a host sets the host end of its veth
 * down: its processes keep running and keep their sockets, but no packet crosses any more (TCP
 * retransmits, as on a real partition); restoring sets it up again.
 *
 * Names carry the test process's pid (`fapt<pid36>…`, namespaces `fapt-<pid>-<i>`), so a run
 * can remove what an earlier run that crashed left behind (removeStale) without touching a live
 * run's. Needs root and iproute2: netnsAvailable says whether, skipping loudly outside CI and
 * failing in CI.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);

export const IP_BIN = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].find((p) => existsSync(p));
const PREFIX = "fapt";
/** Every `ip` command is bounded. */
const COMMAND_TIMEOUT_MS = 10_000;

async function ip(...args: string[]): Promise<string> {
  if (IP_BIN === undefined) throw new Error("iproute2 (the ip command) is not installed");
  const { stdout } = await run(IP_BIN, args, { timeout: COMMAND_TIMEOUT_MS });
  return stdout;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Why namespaces cannot be made here, or undefined when they can (tried for real, then removed). */
async function whyNot(): Promise<string | undefined> {
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  if (IP_BIN === undefined) return "the ip command (iproute2) is not installed";
  if (process.getuid?.() !== 0) return "network namespaces need root (this test runs as a normal user)";
  const probe = `${PREFIX}-${process.pid}-probe`;
  try {
    await ip("netns", "add", probe);
    return undefined;
  } catch (error) {
    return `ip netns add failed: ${(error as Error).message.trim()}`;
  } finally {
    await ip("netns", "del", probe).catch(() => {});
  }
}

/**
 * Whether the partition tests can run: where namespaces can't be made they are skipped with a
 * loud message, except in CI (CI=true, which runs as root), where that is a failure.
 */
export async function netnsAvailable(what = "the network partition tests"): Promise<boolean> {
  const reason = await whyNot();
  if (reason === undefined) return true;
  if (process.env["CI"]) throw new Error(`${what} cannot run: ${reason}. CI must be able to run them.`);
  console.warn(`\n*** SKIPPING ${what}: ${reason}. Run them as root on Linux with iproute2. ***\n`);
  return false;
}

/** The pid in one of our names (`fapt<pid36>…` or `fapt-<pid>-…`), if it is one of ours. */
function ownerPid(name: string): number | undefined {
  const dashed = /^fapt-(\d+)-/.exec(name);
  if (dashed) return Number(dashed[1]);
  const packed = /^fapt([0-9a-z]+)(?:b|h\d+)$/.exec(name);
  return packed ? Number.parseInt(packed[1] as string, 36) : undefined;
}

/**
 * Removes the namespaces and links an earlier run of these tests left behind when its process
 * died without cleaning up (its pid no longer runs), and ends the processes still inside them
 * (started by that run: the CLI workers). Returns what it removed.
 */
export async function removeStale(): Promise<string[]> {
  const removed: string[] = [];
  const namespaces = (await ip("netns", "list")).split("\n").map((l) => l.split(" ")[0] ?? "");
  for (const ns of namespaces) {
    const pid = ownerPid(ns);
    if (pid === undefined || pid === process.pid || alive(pid)) continue;
    const pids = (await ip("netns", "pids", ns).catch(() => "")).split(/\s+/).filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), "SIGKILL");
      } catch {
        // gone
      }
    }
    await ip("netns", "del", ns).catch(() => {});
    removed.push(ns);
  }
  const links = (await ip("-o", "link", "show")).split("\n");
  for (const line of links) {
    const name = /^\d+: ([^:@]+)[:@]/.exec(line)?.[1];
    if (name === undefined) continue;
    const pid = ownerPid(name);
    if (pid === undefined || pid === process.pid || alive(pid)) continue;
    await ip("link", "del", name).catch(() => {});
    removed.push(name);
  }
  if (removed.length > 0)
    console.log(`[netns] removed what a crashed earlier run left: ${removed.join(", ")}`);
  return removed;
}

/** A /24 in 10.231.0.0/16 that no interface of the host uses now. */
async function freeSubnet(): Promise<string> {
  const used = await ip("-o", "-4", "addr", "show");
  for (let i = 0; i < 250; i++) {
    const third = (process.pid + i) % 250;
    const subnet = `10.231.${third}`;
    if (!used.includes(` ${subnet}.`)) return subnet;
  }
  throw new Error("no free /24 in 10.231.0.0/16 for the partition test network");
}

export interface PartitionHost {
  /** The network namespace its processes run in. */
  namespace: string;
  /** The host end of its veth pair (set down to cut it off). */
  hostVeth: string;
  /** Its address on the test network. */
  address: string;
}

export class PartitionNetwork {
  private destroyed = false;

  private constructor(
    readonly bridge: string,
    /** The host side's address on the test network: where the namespaces reach the brokers. */
    readonly brokerHost: string,
    readonly hosts: PartitionHost[],
  ) {}

  /** Creates the bridge and `count` namespaces joined to it (after removing stale ones). */
  static async create(count: number): Promise<PartitionNetwork> {
    await removeStale();
    const tag = `${PREFIX}${process.pid.toString(36)}`;
    const subnet = await freeSubnet();
    const network = new PartitionNetwork(`${tag}b`, `${subnet}.1`, []);
    try {
      await ip("link", "add", network.bridge, "type", "bridge");
      await ip("addr", "add", `${network.brokerHost}/24`, "dev", network.bridge);
      await ip("link", "set", network.bridge, "up");
      for (let i = 0; i < count; i++) {
        const host: PartitionHost = {
          namespace: `${PREFIX}-${process.pid}-${i}`,
          hostVeth: `${tag}h${i}`,
          address: `${subnet}.${i + 2}`,
        };
        network.hosts.push(host);
        await ip("netns", "add", host.namespace);
        await ip(
          "link",
          "add",
          host.hostVeth,
          "type",
          "veth",
          "peer",
          "name",
          "eth0",
          "netns",
          host.namespace,
        );
        await ip("link", "set", host.hostVeth, "master", network.bridge);
        await ip("link", "set", host.hostVeth, "up");
        await ip("-n", host.namespace, "addr", "add", `${host.address}/24`, "dev", "eth0");
        await ip("-n", host.namespace, "link", "set", "eth0", "up");
        await ip("-n", host.namespace, "link", "set", "lo", "up");
      }
    } catch (error) {
      await network.destroy();
      throw error;
    }
    return network;
  }

  /** The command prefix that runs a program inside a host's namespace. */
  exec(host: PartitionHost): string[] {
    return [IP_BIN as string, "netns", "exec", host.namespace];
  }

  /** Cuts the host off: no packet crosses its link until restore(). */
  async cut(host: PartitionHost): Promise<void> {
    await ip("link", "set", host.hostVeth, "down");
  }

  async restore(host: PartitionHost): Promise<void> {
    await ip("link", "set", host.hostVeth, "up");
  }

  /** Removes the namespaces, the veth pairs (with them) and the bridge; idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const host of this.hosts) {
      await ip("link", "del", host.hostVeth).catch(() => {});
      await ip("netns", "del", host.namespace).catch(() => {});
    }
    await ip("link", "del", this.bridge).catch(() => {});
  }
}
