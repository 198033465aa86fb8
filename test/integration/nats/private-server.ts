/**
 * A nats-server of a test's own (own port, own store directory), so a test can kill -9 it and
 * restart it on the same store without touching the shared server. Start-up is awaited on the
 * server's own "ready" log line, not on a timer.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HANG_GUARD_MS } from "../../helpers/async.js";

export const NATS_SERVER_BIN = process.env["NATS_SERVER_BIN"] ?? "/usr/sbin/nats-server";

export function natsServerInstalled(): boolean {
  return existsSync(NATS_SERVER_BIN);
}

/**
 * Whether a test can start a private nats-server: a missing binary fails in CI (which installs
 * it), and elsewhere skips loudly, naming what is missing.
 */
export function privateNatsServerAvailable(what = "this test"): boolean {
  if (natsServerInstalled()) return true;
  const message = `nats-server is not installed at ${NATS_SERVER_BIN} (set NATS_SERVER_BIN)`;
  if (process.env["CI"]) throw new Error(`${message}: CI requires it for ${what}.`);
  console.warn(`\n*** SKIPPING ${what}: ${message}. ***\n`);
  return false;
}

/** A TCP port nobody listens on right now. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface PrivateServerOptions {
  /** `false` starts a server without JetStream (to test that refusal). */
  jetstream?: boolean;
  /** Client port (default: a free one). */
  port?: number;
  /** The address it listens on (default 127.0.0.1). */
  host?: string;
  /** More command-line arguments (server name, cluster routes: see private-cluster.ts). */
  args?: readonly string[];
}

export class PrivateNatsServer {
  private child?: ChildProcess;

  constructor(
    readonly port: number,
    readonly storeDir: string,
    readonly jetstream: boolean,
    readonly args: readonly string[] = [],
    readonly host = "127.0.0.1",
  ) {}

  static async start(options: PrivateServerOptions = {}): Promise<PrivateNatsServer> {
    const dir = await mkdtemp(join(tmpdir(), "fa-nats-"));
    const port = options.port ?? (await freePort(options.host));
    const server = new PrivateNatsServer(port, dir, options.jetstream ?? true, options.args, options.host);
    await server.restart();
    return server;
  }

  get url(): string {
    return `nats://${this.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the server (again) on the same port and store directory; resolves once it is ready. */
  restart(): Promise<void> {
    if (this.child) throw new Error("the private nats-server is already running");
    const args = ["-a", this.host, "-p", String(this.port)];
    if (this.jetstream) args.push("-js", "-sd", this.storeDir);
    args.push(...this.args);
    const child = spawn(NATS_SERVER_BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    return new Promise<void>((resolve, reject) => {
      let log = "";
      const guard = setTimeout(() => fail(new Error(`nats-server did not start:\n${log}`)), HANG_GUARD_MS);
      const fail = (error: Error) => {
        clearTimeout(guard);
        reject(error);
      };
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        if (log.includes("Server is ready")) {
          clearTimeout(guard);
          child.stderr?.off("data", onData);
          child.stdout?.off("data", onData);
          child.stderr?.resume();
          child.stdout?.resume();
          resolve();
        }
      };
      child.stderr?.on("data", onData);
      child.stdout?.on("data", onData);
      child.once("error", fail);
      child.once("exit", (code) => {
        if (this.child === child) this.child = undefined;
        fail(new Error(`nats-server exited with ${code}:\n${log}`));
      });
    });
  }

  /** kill -9: no shutdown, no flush; resolves once the process is gone. */
  kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      this.child = undefined;
      child.kill("SIGKILL");
    });
  }

  /** Kills the server and removes its store. */
  async destroy(): Promise<void> {
    await this.kill();
    await rm(this.storeDir, { recursive: true, force: true });
  }
}
