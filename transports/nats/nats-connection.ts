/**
 * Opening the NATS connection: authentication, TLS, reconnects that never give up (with a delay
 * that grows with the outage), and the checks that the server can carry the transport — headers,
 * JetStream, and a max_payload with room for the configured message size.
 */
import { readFile } from "node:fs/promises";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import {
  type Authenticator,
  type ConnectionOptions,
  connect,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
} from "@nats-io/transport-node";
import { ConfigError, ConnectionError, describeThrown } from "../../src/errors.js";
import { redactUrl } from "../../src/url-redaction.js";
import { HEADER_ROOM_BYTES, type ResolvedNatsOptions } from "./nats-options.js";
import { isTransient } from "./nats-topology.js";

export interface OpenedConnection {
  nc: NatsConnection;
  jsm: JetStreamManager;
  /** The server's max_payload (headers and body together). */
  serverMaxPayload: number;
}

/** Reconnect delays: from reconnectWaitMs, growing with the time spent disconnected, with jitter. */
export class ReconnectBackoff {
  private since = 0;

  constructor(private readonly options: ResolvedNatsOptions) {}

  /** The client calls it on every turn of its dial loop, not once per attempt. */
  readonly delay = (): number => {
    const now = Date.now();
    this.since ||= now;
    const grown = Math.max(this.options.reconnectWaitMs, (now - this.since) / 4);
    return Math.round(Math.min(this.options.maxReconnectWaitMs, grown) * (0.75 + Math.random() / 4));
  };

  /** Connected again: the next outage starts from the shortest delay. */
  reset(): void {
    this.since = 0;
  }
}

export async function openConnection(
  o: ResolvedNatsOptions,
  backoff: ReconnectBackoff,
): Promise<OpenedConnection> {
  const base: ConnectionOptions = {
    servers: o.servers,
    name: o.name,
    timeout: o.connectTimeoutMs,
    reconnect: true,
    maxReconnectAttempts: -1,
    waitOnFirstConnect: false,
    pingInterval: 10_000,
    maxPingOut: 3,
    reconnectDelayHandler: backoff.delay,
  };
  if (o.token !== undefined) base.token = o.token;
  if (o.user !== undefined) base.user = o.user;
  if (o.password !== undefined) base.pass = o.password;
  if (o.tls) base.tls = o.tls;
  const auth = await authenticator(o);
  if (auth) base.authenticator = auth;
  let nc: NatsConnection;
  try {
    nc = await connect(base);
  } catch (error) {
    throw new ConnectionError(
      `Could not connect to NATS at ${o.servers.map(redactUrl).join(", ")}: ${describeThrown(error)}. ` +
        "Check that nats-server runs there (with -js for JetStream) and that the credentials are right.",
      { cause: error, retryable: true },
    );
  }
  backoff.reset();
  try {
    const serverMaxPayload = checkServer(nc, o);
    return { nc, jsm: await openManager(nc, o), serverMaxPayload };
  } catch (error) {
    await nc.close().catch(() => {});
    throw error;
  }
}

/**
 * The JetStream manager, once the account's JetStream answers. A cluster electing its meta leader
 * (its last one died) answers nothing for a few seconds: that is waited for, as long as a publish
 * would wait (publishTimeoutMs × publishAttempts), and reported as such if it lasts.
 */
async function openManager(nc: NatsConnection, o: ResolvedNatsOptions): Promise<JetStreamManager> {
  const giveUpAt = Date.now() + o.publishTimeoutMs * o.publishAttempts;
  for (let attempt = 1; ; attempt++) {
    try {
      return await jetstreamManager(nc, { timeout: o.publishTimeoutMs });
    } catch (error) {
      const transient = isTransient(error);
      if (transient && Date.now() < giveUpAt && !nc.isClosed()) {
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
        continue;
      }
      throw new ConnectionError(
        transient
          ? `JetStream did not answer (${describeThrown(error)}): the server or its cluster may be electing a ` +
              "leader, or has too few nodes up. Try again; check the servers' logs if it persists."
          : `JetStream is not available on this account: ${describeThrown(error)}. ` +
              "Enable JetStream for the account (or the server, with -js).",
        { cause: error, retryable: transient },
      );
    }
  }
}

function checkServer(nc: NatsConnection, o: ResolvedNatsOptions): number {
  const info = nc.info;
  if (info && info.headers === false) {
    throw new ConfigError(`The NATS server ${info.server_name} does not support headers (needs 2.2+).`);
  }
  if (info && !info.jetstream) {
    throw new ConfigError(
      `The NATS server ${info.server_name} (${info.version}) has JetStream disabled; ` +
        "start it with -js (or a jetstream {} block) to use it for work queues.",
    );
  }
  const serverMaxPayload = info?.max_payload ?? 1024 * 1024;
  const limit = serverMaxPayload - HEADER_ROOM_BYTES;
  if (o.maxPayloadBytes !== undefined && o.maxPayloadBytes > limit) {
    throw new ConfigError(
      `maxPayloadBytes (${o.maxPayloadBytes}) is over what this server accepts: its max_payload is ` +
        `${serverMaxPayload} bytes, minus ${HEADER_ROOM_BYTES} kept for headers = ${limit}. ` +
        "Lower maxPayloadBytes, or raise max_payload in the server's configuration.",
    );
  }
  return serverMaxPayload;
}

async function authenticator(o: ResolvedNatsOptions): Promise<Authenticator | undefined> {
  if (o.nkeySeed !== undefined) return nkeyAuthenticator(new TextEncoder().encode(o.nkeySeed));
  if (o.credsFile === undefined) return undefined;
  try {
    return credsAuthenticator(await readFile(o.credsFile));
  } catch (error) {
    throw new ConfigError(
      `Cannot read the NATS credentials file "${o.credsFile}": ${describeThrown(error)}.`,
      {
        cause: error,
      },
    );
  }
}
