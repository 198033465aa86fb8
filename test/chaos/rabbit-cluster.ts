/**
 * A private RabbitMQ cluster for a test: `rabbitmq-server` nodes started by the test itself, each
 * with its own node name, AMQP and distribution ports, data and log directories, and an Erlang
 * cookie of their own (so the shared broker on 5672 can never be reached by the commands sent to
 * them), joined into one cluster. Nodes are stopped by the pids this helper started, never by name.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const SBIN = "/usr/lib/rabbitmq/bin";

export interface ClusterNode {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** The beam.smp pid (from the node's pid file), once it booted. */
  pid?: number;
  launcher?: ChildProcess;
}

/** Whether this machine has the RabbitMQ server scripts (a skip reason otherwise). */
export function rabbitServerInstalled(): boolean {
  return existsSync(join(SBIN, "rabbitmq-server")) && existsSync(join(SBIN, "rabbitmqctl"));
}

export class RabbitCluster {
  readonly nodes: ClusterNode[];
  private readonly dir: string;
  private readonly home: string;

  constructor(size: number, basePort = 5701) {
    this.dir = join(tmpdir(), `fa-rmq-cluster-${process.pid}`);
    this.home = join(this.dir, "home");
    const tag = process.pid.toString(36);
    this.nodes = Array.from({ length: size }, (_, i) => {
      const port = basePort + i;
      return { name: `faq${tag}n${i + 1}@localhost`, port, url: `amqp://guest:guest@127.0.0.1:${port}` };
    });
  }

  private env(node: ClusterNode, i: number): NodeJS.ProcessEnv {
    const base = join(this.dir, `n${i + 1}`);
    return {
      ...process.env,
      HOME: this.home,
      RABBITMQ_NODENAME: node.name,
      RABBITMQ_NODE_PORT: String(node.port),
      RABBITMQ_DIST_PORT: String(node.port + 20_000),
      RABBITMQ_MNESIA_BASE: join(base, "mnesia"),
      RABBITMQ_LOG_BASE: join(base, "log"),
      RABBITMQ_PID_FILE: join(base, "pid"),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(base, "plugins"),
      RABBITMQ_CONFIG_FILE: join(base, "rabbitmq"),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(base, "advanced"),
    };
  }

  /** rabbitmqctl against one of this cluster's nodes (its cookie: never the shared broker). */
  async ctl(i: number, ...args: string[]): Promise<string> {
    const node = this.nodes[i] as ClusterNode;
    const { stdout } = await run(join(SBIN, "rabbitmqctl"), ["-n", node.name, ...args], {
      env: this.env(node, i),
      timeout: 120_000,
    });
    return stdout;
  }

  /** Boots every node, then joins the others to the first. Returns the time it took. */
  async start(): Promise<number> {
    const started = Date.now();
    mkdirSync(this.home, { recursive: true });
    const cookie = join(this.home, ".erlang.cookie");
    writeFileSync(cookie, randomBytes(20).toString("hex"));
    chmodSync(cookie, 0o400);
    this.nodes.forEach((node, i) => {
      const base = join(this.dir, `n${i + 1}`);
      mkdirSync(base, { recursive: true });
      writeFileSync(join(base, "plugins"), "[].");
      writeFileSync(join(base, "advanced.config"), "[].");
      writeFileSync(
        join(base, "rabbitmq.conf"),
        `listeners.tcp.default = ${node.port}\nloopback_users = none\n`,
      );
      node.launcher = spawn(join(SBIN, "rabbitmq-server"), [], {
        env: this.env(node, i),
        stdio: "ignore",
        detached: true,
      });
    });
    await Promise.all(this.nodes.map((_, i) => this.awaitBoot(i)));
    for (let i = 1; i < this.nodes.length; i++) {
      await this.ctl(i, "stop_app");
      await this.ctl(i, "reset");
      await this.ctl(i, "join_cluster", (this.nodes[0] as ClusterNode).name);
      await this.ctl(i, "start_app");
    }
    return Date.now() - started;
  }

  private async awaitBoot(i: number): Promise<void> {
    const node = this.nodes[i] as ClusterNode;
    const deadline = Date.now() + 120_000;
    const pidFile = join(this.dir, `n${i + 1}`, "pid");
    for (;;) {
      try {
        await this.ctl(i, "await_startup", "--timeout", "10");
        break;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`node ${node.name} did not boot: ${String(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    node.pid = Number(readFileSync(pidFile, "utf8").trim());
  }

  /** Kills one node at once (SIGKILL of its beam process). */
  kill(i: number): void {
    const node = this.nodes[i] as ClusterNode;
    if (node.pid) process.kill(node.pid, "SIGKILL");
  }

  /** Resident memory of each node (MB), from /proc. */
  memoryMb(): number[] {
    return this.nodes.map((node) => {
      if (!node.pid) return 0;
      try {
        const status = readFileSync(`/proc/${node.pid}/status`, "utf8");
        return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
      } catch {
        return 0;
      }
    });
  }

  /** Kills every node this cluster started and removes its directories. */
  async stop(): Promise<void> {
    for (const node of this.nodes) {
      // The beam process, then the launcher's process group (detached: its own group).
      for (const pid of [node.pid, node.launcher?.pid ? -node.launcher.pid : undefined]) {
        if (!pid) continue;
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
