/**
 * A TCP proxy in front of the broker that a test can cut: a network outage for one client's
 * connections only, without stopping the broker for everybody else. Cut: every connection is
 * destroyed (the broker sees them close) and new ones are refused until restore().
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private down = false;
  /** Connections accepted so far (a reconnection shows as one more). */
  accepted = 0;
  /** Sees every chunk a client sends to the broker, with the number of its connection (1, 2, …). */
  onClientData?: (connection: number, chunk: Buffer) => void;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => proxy?.accept(client, target));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("the proxy has no port");
    proxy = new TcpProxy(server, address.port);
    return proxy;
  }

  /** `url` with its host and port replaced by the proxy's. */
  url(url: URL): string {
    const copy = new URL(url.href);
    copy.hostname = "127.0.0.1";
    copy.port = String(this.port);
    return copy.href;
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    if (this.down) {
      client.destroy();
      return;
    }
    const connection = ++this.accepted;
    client.on("data", (chunk: Buffer) => this.onClientData?.(connection, chunk));
    const upstream = createConnection(target);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  cut(): void {
    this.down = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
