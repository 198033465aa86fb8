/**
 * The HTTP server's protection against slow and idle clients: how long a request may take to
 * arrive, how long an idle keep-alive connection stays open, how many connections and how many
 * requests per connection it serves. Safe defaults; AppOptions change them.
 */
import type { ServerOptions } from "node:http";
import { ConfigError } from "../errors.js";
import { checked, durationIn, intIn } from "../limits.js";

export interface ServerLimitOptions {
  /** The whole request (headers and body) must arrive within this (else 408). Default 30,000. */
  requestTimeoutMs?: number;
  /** The headers must arrive within this (else 408); at most requestTimeoutMs. Default 10,000. */
  headersTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this. Default 5,000. */
  keepAliveTimeoutMs?: number;
  /**
   * A connection with no traffic either way for this long is closed, even while its request runs
   * (keep it above your longest handler). Default 0: off (the timeouts above cover slow clients).
   */
  connectionTimeoutMs?: number;
  /** Connections open at once; more are refused at once. Default 1,000. */
  maxConnections?: number;
  /** Requests served on one keep-alive connection before it is closed. Default 1,000. */
  maxRequestsPerSocket?: number;
}

export type ServerLimits = Required<ServerLimitOptions>;

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  connectionTimeoutMs: 0,
  maxConnections: 1_000,
  maxRequestsPerSocket: 1_000,
};

export const SERVER_LIMIT_KEYS = Object.keys(DEFAULT_SERVER_LIMITS) as Array<keyof ServerLimits>;

const CHECKS: Record<keyof ServerLimits, ReturnType<typeof intIn>> = {
  requestTimeoutMs: durationIn(1),
  headersTimeoutMs: durationIn(1),
  keepAliveTimeoutMs: durationIn(1),
  connectionTimeoutMs: durationIn(0),
  maxConnections: intIn(1, 1_000_000),
  maxRequestsPerSocket: intIn(1, 1_000_000_000),
};

/** The limits given, validated, over the defaults. */
export function resolveServerLimits(options: ServerLimitOptions): ServerLimits {
  const limits = { ...DEFAULT_SERVER_LIMITS };
  for (const key of SERVER_LIMIT_KEYS) {
    const value = options[key];
    if (value !== undefined) limits[key] = checked(`AppOptions.${key}`, value, CHECKS[key]);
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new ConfigError(
      `AppOptions.headersTimeoutMs (${limits.headersTimeoutMs}) is above requestTimeoutMs ` +
        `(${limits.requestTimeoutMs}): the headers are part of the request; lower it or raise requestTimeoutMs.`,
    );
  }
  return limits;
}

/** Node's server options for these limits (Fastify sets the others from its own options). */
export function nodeServerOptions(limits: ServerLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    // Node checks the two timeouts above on this interval (30 s by default, longer than them).
    connectionsCheckingInterval: Math.max(
      50,
      Math.min(30_000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)),
    ),
  };
}
