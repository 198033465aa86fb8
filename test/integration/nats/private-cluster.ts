/**
 * A JetStream cluster of a test's own: three (or more) private nats-servers on free ports, each
 * with its own store directory, joined by cluster routes. A node can be killed with SIGKILL and
 * restarted on its port and store; `ready()` waits until JetStream has a meta leader again, and
 * `current()` until a stream's replicas are all caught up. Never the shared server on 4222.
 */
import { type JetStreamManager, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { freePort, PrivateNatsServer } from "./private-server.js";

/** One node of the cluster: a private server with a name and an HTTP monitoring port. */
export interface ClusterNode {
  readonly name: string;
  readonly server: PrivateNatsServer;
  readonly monitorPort: number;
}

const CLUSTER_NAME = "fa-test";

export class PrivateNatsCluster {
  private nc?: NatsConnection;
  private jsm?: JetStreamManager;

  private constructor(readonly nodes: readonly ClusterNode[]) {}

  /** Starts `size` nodes at once and resolves once JetStream has elected its meta leader. */
  static async start(size = 3): Promise<PrivateNatsCluster> {
    const ports = await distinctFreePorts(size * 3);
    const clientPorts = ports.slice(0, size);
    const routePorts = ports.slice(size, size * 2);
    const monitorPorts = ports.slice(size * 2);
    const route = (port: number) => `nats://127.0.0.1:${port}`;
    const started = await Promise.allSettled(
      clientPorts.map(async (port, i): Promise<ClusterNode> => {
        const name = `n${i + 1}`;
        const routes = routePorts.filter((_, j) => j !== i).map(route);
        const monitorPort = monitorPorts[i] as number;
        const server = await PrivateNatsServer.start({
          port,
          args: [
            "--name",
            name,
            "-m",
            String(monitorPort),
            "--cluster_name",
            CLUSTER_NAME,
            "--cluster",
            route(routePorts[i] as number),
            "--routes",
            routes.join(","),
          ],
        });
        return { name, server, monitorPort };
      }),
    );
    const nodes = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) {
      await Promise.all(nodes.map((n) => n.server.destroy()));
      throw failed.reason;
    }
    const cluster = new PrivateNatsCluster(nodes);
    await cluster.ready();
    return cluster;
  }

  /** Every client URL, for a transport's `servers`. */
  get servers(): string[] {
    return this.nodes.map((n) => n.server.url);
  }

  /** A transport URL naming every node: nats://127.0.0.1:a,127.0.0.1:b,… */
  get url(): string {
    return `nats://${this.nodes.map((n) => `127.0.0.1:${n.server.port}`).join(",")}`;
  }

  node(name: string): ClusterNode {
    const node = this.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no node "${name}" in the cluster (${this.nodes.map((n) => n.name)})`);
    return node;
  }

  /** The JetStream manager of the test's own connection (to any live node). */
  async manager(): Promise<JetStreamManager> {
    if (!this.nc || this.nc.isClosed()) {
      this.nc = await connect({
        servers: this.servers,
        reconnectTimeWait: 100,
        maxReconnectAttempts: -1,
        name: "private-cluster-admin",
      });
      this.jsm = undefined;
    }
    this.jsm ??= await jetstreamManager(this.nc, { timeout: 2000 });
    return this.jsm;
  }

  /**
   * Resolves once JetStream can place a stream on every node (a meta leader is elected and knows
   * all its peers: before that, creating a replicated stream fails with "no suitable peers").
   */
  async ready(guardMs = 30_000): Promise<void> {
    const name = `fa_cluster_probe_${process.pid}`;
    await this.retry(guardMs, `JetStream placing a stream on all ${this.nodes.length} nodes`, async () => {
      const jsm = await this.manager();
      await jsm.streams.add({
        name,
        subjects: [`fa-cluster-probe.${process.pid}`],
        num_replicas: this.nodes.length,
        storage: StorageType.Memory,
      });
      await jsm.streams.delete(name);
      return true;
    });
  }

  /** The node leading a stream now (its Raft group's leader). */
  async streamLeader(stream: string, guardMs = 30_000): Promise<string> {
    return this.retry(guardMs, `a leader of stream ${stream}`, async () => {
      const info = await (await this.manager()).streams.info(stream);
      return info.cluster?.leader || undefined;
    });
  }

  /** The node leading a consumer now. */
  async consumerLeader(stream: string, consumer: string, guardMs = 30_000): Promise<string> {
    return this.retry(guardMs, `a leader of consumer ${stream}/${consumer}`, async () => {
      const info = await (await this.manager()).consumers.info(stream, consumer);
      return info.cluster?.leader || undefined;
    });
  }

  /**
   * Resolves once every replica of `stream` (and of its `consumers`) is caught up (`caughtUp`),
   * none offline, and the whole replica set present.
   */
  async current(stream: string, consumers: readonly string[] | "all", replicas: number, guardMs = 60_000) {
    let state = "";
    await this.retry(
      guardMs,
      `all ${replicas} replicas of ${stream} current`,
      async () => {
        const jsm = await this.manager();
        const names = consumers === "all" ? await this.consumersOf(stream) : consumers;
        const infos = await Promise.allSettled([
          jsm.streams.info(stream),
          ...names.map((c) => jsm.consumers.info(stream, c)),
        ]);
        const groups = infos.map((i) => (i.status === "fulfilled" ? i.value.cluster : undefined));
        state = infos
          .map((info, k) => {
            const what = k === 0 ? "stream" : names[k - 1];
            if (info.status === "rejected") return `${what}: ${info.reason}`;
            const g = info.value.cluster;
            const peers = (g?.replicas ?? []).map(
              (r) =>
                `${r.name}${r.current ? "" : ` behind (lag ${r.lag}, seen ${Math.round(r.active / 1e6)} ms ago)`}` +
                `${r.offline ? " offline" : ""}`,
            );
            return `${what}: leader ${g?.leader || "none"}, peers ${peers.join(", ") || "none"}`;
          })
          .join("; ");
        return groups.every(
          (g) =>
            g?.leader &&
            (g.replicas ?? []).length === replicas - 1 &&
            (g.replicas ?? []).every((r) => caughtUp(r)),
        )
          ? true
          : undefined;
      },
      () => state,
    );
  }

  /** Names of the client connections a live node holds (its monitoring /connz). */
  async clientsOn(name: string): Promise<string[]> {
    const node = this.node(name);
    const response = await fetch(`http://127.0.0.1:${node.monitorPort}/connz?limit=1000`, {
      signal: AbortSignal.timeout(5000),
    });
    const body = (await response.json()) as { connections?: Array<{ name?: string }> };
    return (body.connections ?? []).map((c) => c.name ?? "");
  }

  /** The first live node (other than `except`) holding a client connection whose name starts so. */
  async nodeWithClient(prefix: string, except?: string): Promise<string | undefined> {
    for (const node of this.nodes) {
      if (node.name === except || node.server.pid === undefined) continue;
      const clients = await this.clientsOn(node.name).catch(() => []);
      if (clients.some((c) => c.startsWith(prefix))) return node.name;
    }
    return undefined;
  }

  /**
   * Records the leader elections of `stream` and its consumers as the servers announce them
   * (advisories; while the test's own connection is moving to another node, one can be missed).
   */
  async watchElections(stream: string): Promise<Array<{ at: number; what: string; leader: string }>> {
    await this.manager();
    const nc = this.nc as NatsConnection;
    const seen: Array<{ at: number; what: string; leader: string }> = [];
    const record = (kind: string) => (_err: unknown, msg: { subject: string; data: Uint8Array }) => {
      const what = kind === "stream" ? "stream" : `consumer ${msg.subject.split(".").at(-1)}`;
      let leader = "?";
      try {
        leader = String(JSON.parse(new TextDecoder().decode(msg.data)).leader);
      } catch {
        // the subject is what matters
      }
      seen.push({ at: Date.now(), what, leader });
    };
    nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${stream}`, { callback: record("stream") });
    nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.${stream}.*`, { callback: record("consumer") });
    await nc.flush();
    return seen;
  }

  /**
   * Moves the leadership of `stream` and of its `consumers` ("all": every consumer it has at each
   * try, since some come and go) to the node `name` by asking their leaders elsewhere to step down
   * (each new election picks a node at random), bounded.
   */
  async lead(
    name: string,
    stream: string,
    consumers: readonly string[] | "all",
    guardMs = 60_000,
  ): Promise<void> {
    await this.manager();
    const nc = this.nc as NatsConnection;
    const groupsNow = async () => [
      { api: `$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, leader: () => this.streamLeader(stream, 5000) },
      ...(consumers === "all" ? await this.consumersOf(stream) : consumers).map((c) => ({
        api: `$JS.API.CONSUMER.LEADER.STEPDOWN.${stream}.${c}`,
        leader: () => this.consumerLeader(stream, c, 5000),
      })),
    ];
    const which = consumers === "all" ? "all its consumers" : consumers.join(", ");
    await this.retry(guardMs, `${name} leading ${stream} and ${which}`, async () => {
      let all = true;
      for (const g of await groupsNow()) {
        if ((await g.leader()) === name) continue;
        all = false;
        await nc.request(g.api, undefined, { timeout: 5000 }).catch(() => {});
      }
      return all ? true : undefined;
    });
  }

  /** The consumers of a stream now. */
  async consumersOf(stream: string): Promise<string[]> {
    const names: string[] = [];
    for await (const c of (await this.manager()).consumers.list(stream)) names.push(c.name);
    return names;
  }

  /**
   * Each stream's configured replicas and the replica set its Raft group has now (leader + peers),
   * and the same for each of its consumers: "stream 3/3", "stream/consumer 3/3".
   */
  async replicaSets(
    streams: readonly string[],
  ): Promise<Array<{ what: string; configured: number; peers: number }>> {
    const jsm = await this.manager();
    const out: Array<{ what: string; configured: number; peers: number }> = [];
    for (const stream of streams) {
      const info = await jsm.streams.info(stream);
      const peers = (g?: { leader?: string; replicas?: unknown[] }) =>
        (g?.leader ? 1 : 0) + (g?.replicas?.length ?? 0);
      out.push({ what: stream, configured: info.config.num_replicas, peers: peers(info.cluster) });
      for await (const c of jsm.consumers.list(stream)) {
        out.push({
          what: `${stream}/${c.name}`,
          configured: c.config.num_replicas || info.config.num_replicas,
          peers: peers(c.cluster),
        });
      }
    }
    return out;
  }

  /** Starts the nodes that are down again (same ports and stores), then waits until ready(). */
  async restartDown(): Promise<void> {
    await Promise.all(this.nodes.filter((n) => n.server.pid === undefined).map((n) => n.server.restart()));
    await this.ready();
  }

  /** Kills every node and removes their stores. */
  async destroy(): Promise<void> {
    await this.nc?.close().catch(() => {});
    await Promise.all(this.nodes.map((n) => n.server.destroy()));
  }

  /** Re-runs `read` (errors count as "not yet") until it gives a value, within `guardMs`. */
  private async retry<T>(
    guardMs: number,
    what: string,
    read: () => Promise<T | undefined>,
    describe: () => string = () => "",
  ): Promise<T> {
    const deadline = Date.now() + guardMs;
    let last: unknown;
    for (;;) {
      try {
        const value = await read();
        if (value !== undefined) return value;
      } catch (error) {
        last = error;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `hang guard (${guardMs} ms): waited for ${what}${last ? `; last error: ${last}` : ""}` +
            `${describe() ? `; last seen: ${describe()}` : ""}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * A peer that is current, or (a consumer under a steady stream of acks is rarely seen with no
 * operation in flight) online, seen in the last 2 s and at most 100 operations behind.
 */
function caughtUp(r: { current: boolean; offline: boolean; lag: number; active: number }): boolean {
  return !r.offline && (r.current || ((r.lag ?? Number.POSITIVE_INFINITY) <= 100 && r.active < 2e9));
}

/** `n` free ports, no two alike. */
async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
