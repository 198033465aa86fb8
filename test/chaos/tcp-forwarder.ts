/**
 * A TCP forwarder in the test process: listens on one address (the partition network's host side)
 * and pipes every connection to a target (the shared RabbitMQ on 127.0.0.1, which a network
 * namespace cannot reach). Cutting a namespace's link then cuts its clients off while the
 * forwarder keeps its connections to the broker: the broker sees silent clients, as it would
 * behind a real partition. When either side of a pair closes, the other is closed too.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

export class TcpForwarder {
  private constructor(
    private readonly server: Server,
    private readonly sockets: Set<Socket>,
    readonly host: string,
    readonly port: number,
  ) {}

  static start(host: string, target: { host: string; port: number }): Promise<TcpForwarder> {
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = createConnection(target);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.setNoDelay(true);
        s.on("error", () => {}); // the close below ends the pair
        s.once("close", () => {
          sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, host, () => {
        const address = server.address();
        const port = typeof address === "object" && address ? address.port : 0;
        resolve(new TcpForwarder(server, sockets, host, port));
      });
    });
  }

  /** Connections open now (both ends counted). */
  get open(): number {
    return this.sockets.size;
  }

  /** Stops listening and closes every connection (bounded: resolves within 5 s whatever happens). */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 5000);
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
