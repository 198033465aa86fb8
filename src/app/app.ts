/**
 * App: the seed's web integration on Fastify. Startup hooks run before the server listens; `close()`
 * drains (new requests get 503, in-flight ones finish, the shutdown hooks run, e.g. a graceful
 * coordinator stop) and then closes the server. `enableShutdownSignals()` does that on SIGTERM/SIGINT.
 */
import type { IncomingHttpHeaders } from "node:http";
import Fastify, { type FastifyInstance, type HTTPMethods } from "fastify";
import { validateKeys } from "../config.js";
import type { Coordinator } from "../coordinator.js";
import { ConfigError, cutText, describeThrown, LifecycleHookError, StateError } from "../errors.js";
import { checked, durationIn, intIn } from "../limits.js";
import { getDefaultLogger, type Logger } from "../logger.js";
import { type AuthFunction, accessOf, refusalOf } from "./auth.js";
import { type CoordinatorRoutesOptions, coordinatorRoutes } from "./coordinator-routes.js";
import {
  type DashboardOptions,
  dashboardRoutes,
  normalizeDashboardPath,
} from "./dashboard/dashboard-routes.js";
import { clientErrorHandler, frameworkErrorHandler, httpErrorHandler } from "./http-errors.js";
import { nodeServerOptions, resolveServerLimits, type ServerLimitOptions } from "./server-limits.js";

export interface AppOptions extends ServerLimitOptions {
  /** The service's name, in logs and the 404 message. */
  title?: string;
  /** Largest request body accepted, in bytes (larger: 413). Default 1 MiB. */
  bodyLimit?: number;
  /** Fastify's request logging (pino, to stdout). Default false. */
  logger?: boolean;
  /** Trust X-Forwarded-* headers (behind a proxy). Default false. */
  trustProxy?: boolean;
  /** Where the App logs its own errors and shutdown. Default: the library's logger. */
  appLogger?: Logger;
  /**
   * Runs on every request before any route (REST, metrics, dashboard, agent endpoints, 404s):
   * true allows, false answers 401, `{ status: 403 }` answers 403 (see auth.ts; `bearerToken()`
   * is a ready one). Default: none — everything is open to whoever reaches the port.
   */
  auth?: AuthFunction;
  /**
   * Whether task error messages (a handler's thrown message) reach HTTP clients, in error
   * answers and task records. Default true; false replaces them with a generic text (the server
   * log keeps them).
   */
  exposeTaskErrors?: boolean;
}

/** What an agent endpoint's function receives. */
export interface AgentRequest<D = unknown> {
  /** The parsed JSON body (for GET and DELETE: the query string's parameters). */
  data: D;
  params: Record<string, string>;
  query: Record<string, unknown>;
  headers: IncomingHttpHeaders;
  /** The request id (also in error responses and logs). */
  id: string;
  /** Aborted when the client goes away before the answer. */
  signal: AbortSignal;
}

export interface AgentEndpointOptions {
  path: string;
  /** Default "POST". */
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** A JSON schema the body must match (400 otherwise). */
  bodySchema?: Record<string, unknown>;
}

export interface ListenOptions {
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default "127.0.0.1"; "0.0.0.0" to accept connections from other hosts. */
  host?: string;
}

export interface ShutdownSignalOptions {
  /** Default ["SIGTERM", "SIGINT"]. */
  signals?: NodeJS.Signals[];
  /** Exit the process once closed (0, or 1 when a hook failed). Default true. */
  exit?: boolean;
  /** Exit with 1 if closing takes longer than this. Default 30 s. */
  timeoutMs?: number;
}

type Hook = () => unknown;

export const DEFAULT_BODY_LIMIT = 1024 * 1024;
/** Every AppOptions key (the compiler keeps this list complete). */
const APP_OPTION_KEYS = Object.keys({
  title: true,
  bodyLimit: true,
  logger: true,
  trustProxy: true,
  appLogger: true,
  requestTimeoutMs: true,
  headersTimeoutMs: true,
  keepAliveTimeoutMs: true,
  connectionTimeoutMs: true,
  maxConnections: true,
  maxRequestsPerSocket: true,
  auth: true,
  exposeTaskErrors: true,
} satisfies Record<keyof AppOptions, true>);
const BODY_LIMIT = intIn(1, 1024 * 1024 * 1024);
/** The longest path parameter (Fastify's default, 100, cut task ids of 101-128 characters off). */
const MAX_PARAM_LENGTH = 1024;

export class App {
  readonly title: string;
  /** The Fastify instance, for what App does not wrap (plugins, your own routes). */
  readonly server: FastifyInstance;
  private readonly bodyLimit: number;
  private readonly logger: Logger;
  private readonly exposeTaskErrors: boolean;
  private readonly startupHooks: Hook[] = [];
  private readonly shutdownHooks: Hook[] = [];
  private state: "new" | "starting" | "listening" | "closing" | "closed" = "new";
  private started = false;
  private baseUrl?: string;
  private closing?: Promise<void>;
  private removeSignals?: () => void;

  constructor(options: AppOptions = {}) {
    validateKeys("AppOptions", options, APP_OPTION_KEYS);
    this.title = options.title ?? "fastagentic";
    this.bodyLimit = checked("AppOptions.bodyLimit", options.bodyLimit ?? DEFAULT_BODY_LIMIT, BODY_LIMIT);
    const limits = resolveServerLimits(options);
    this.logger = options.appLogger ?? getDefaultLogger();
    this.exposeTaskErrors = options.exposeTaskErrors ?? true;
    this.server = Fastify({
      bodyLimit: this.bodyLimit,
      logger: options.logger ?? false,
      trustProxy: options.trustProxy ?? false,
      // Strict JSON: no type coercion ("5" is not 5), unknown fields are errors, not dropped.
      ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
      // Room for any task id (128 characters, each up to 3 once percent-encoded) as a path parameter.
      routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
      // Errors met before a route runs answer in the same shape as the others.
      frameworkErrors: frameworkErrorHandler,
      clientErrorHandler,
      // Slow and idle clients (server-limits.ts).
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionTimeout: limits.connectionTimeoutMs,
      maxRequestsPerSocket: limits.maxRequestsPerSocket,
      http: nodeServerOptions(limits),
    });
    this.server.server.maxConnections = limits.maxConnections;
    this.server.setErrorHandler(
      httpErrorHandler(this.logger, { bodyLimit: this.bodyLimit, exposeTaskErrors: this.exposeTaskErrors }),
    );
    this.server.setNotFoundHandler((request, reply) => {
      void reply.code(404).send({
        error: {
          code: "FA_NOT_FOUND",
          message: `${this.title} has no route ${request.method} ${cutText(request.url, 200)}.`,
        },
      });
    });
    this.server.addHook("onRequest", async (_request, reply) => {
      if (this.state !== "closing") return;
      reply.header("connection", "close").header("retry-after", "1");
      await reply.code(503).send({
        error: {
          code: "FA_SHUTTING_DOWN",
          message: `${this.title} is shutting down; retry on another instance.`,
        },
      });
    });
    const auth = options.auth;
    if (auth !== undefined) {
      if (typeof auth !== "function") {
        throw new ConfigError("AppOptions.auth must be a function of the request (e.g. bearerToken(token)).");
      }
      this.server.addHook("onRequest", async (request, reply) => {
        let decision: Awaited<ReturnType<AuthFunction>>;
        try {
          decision = await auth({
            method: request.method,
            url: request.url,
            headers: request.headers,
            ip: request.ip,
            access: accessOf(request.method),
          });
        } catch (error) {
          this.logger.error({ err: describeThrown(error), reqId: request.id }, "the auth function threw");
          await reply.code(500).send({
            error: {
              code: "FA_INTERNAL",
              message: `Could not check the credentials of request ${request.id}.`,
            },
          });
          return;
        }
        if (decision === true) return;
        const refusal = refusalOf(decision === false || typeof decision !== "object" ? false : decision);
        for (const [name, values] of Object.entries(refusal.headers)) reply.header(name, values);
        await reply.code(refusal.status).send(refusal.body);
      });
    }
  }

  /** Runs `fn` (awaited, in registration order) before the server starts listening. */
  onStartup(fn: Hook): this {
    this.assertNew("onStartup");
    this.startupHooks.push(fn);
    return this;
  }

  /** Runs `fn` (awaited, in registration order) on close(), before the server closes. */
  onShutdown(fn: Hook): this {
    if (this.state === "closing" || this.state === "closed") {
      throw new StateError(`App ${this.title} is ${this.state}; register shutdown hooks before close().`);
    }
    this.shutdownHooks.push(fn);
    return this;
  }

  /** Serves `fn` at `path`: `request.data` is the parsed JSON body, the return value is sent as JSON. */
  agentEndpoint<D = unknown, R = unknown>(
    options: AgentEndpointOptions,
    fn: (request: AgentRequest<D>) => R | Promise<R>,
  ): this {
    this.assertNew("agentEndpoint");
    const method = (options.method ?? "POST") as HTTPMethods;
    const withBody = method !== "GET" && method !== "DELETE";
    this.server.route({
      method,
      url: options.path,
      schema: options.bodySchema && withBody ? { body: options.bodySchema } : {},
      handler: async (request, reply) => {
        const gone = new AbortController();
        reply.raw.once("close", () => {
          if (!reply.raw.writableFinished) gone.abort();
        });
        const result = await fn({
          data: (withBody ? request.body : request.query) as D,
          params: request.params as Record<string, string>,
          query: request.query as Record<string, unknown>,
          headers: request.headers,
          id: request.id,
          signal: gone.signal,
        });
        return reply.type("application/json; charset=utf-8").send(JSON.stringify(result ?? null));
      },
    });
    return this;
  }

  /** Mounts the coordinator's REST surface (see coordinator-routes.ts) under `prefix` (default "/"). */
  mountCoordinator(
    coordinator: Coordinator,
    options: CoordinatorRoutesOptions & { prefix?: string } = {},
  ): this {
    this.assertNew("mountCoordinator");
    const { prefix, ...routes } = options;
    const plugin = coordinatorRoutes(coordinator, {
      bodyLimit: this.bodyLimit,
      logger: this.logger,
      exposeTaskErrors: this.exposeTaskErrors,
      ...routes,
    });
    const normalized = !prefix || prefix === "/" ? "" : `/${prefix.replace(/^\/+|\/+$/g, "")}`;
    void this.server.register(plugin, { prefix: normalized });
    return this;
  }

  /**
   * Serves the live dashboard of `coordinator` at `options.path` (default "/dashboard"), behind
   * the App's `auth` like every other route (see dashboard/dashboard-routes.ts).
   */
  mountDashboard(coordinator: Coordinator, options: DashboardOptions = {}): this {
    this.assertNew("mountDashboard");
    const prefix = normalizeDashboardPath(options.path);
    const { plugin } = dashboardRoutes(coordinator, options, {
      logger: this.logger,
      bodyLimit: this.bodyLimit,
    });
    void this.server.register(plugin, { prefix });
    return this;
  }

  /** Runs the startup hooks, then listens; resolves with the base URL (e.g. "http://127.0.0.1:8080"). */
  async listen(options: ListenOptions = {}): Promise<string> {
    this.assertNew("listen");
    validateKeys("ListenOptions", options, ["port", "host"]);
    if (options.port !== undefined) checked("ListenOptions.port", options.port, intIn(0, 65_535));
    this.state = "starting";
    try {
      await this.runHooks(this.startupHooks, "onStartup");
      await this.server.listen({ port: options.port ?? 8080, host: options.host ?? "127.0.0.1" });
    } catch (error) {
      // Whatever the startup hooks did start (a coordinator…) is stopped again, best effort.
      await this.runHooks(this.shutdownHooks, "onShutdown", true).catch((e: unknown) => {
        this.logger.error(
          { err: describeThrown(e), app: this.title },
          "shutdown after a failed start failed",
        );
      });
      this.state = "closed";
      await this.server.close().catch(() => {});
      throw error;
    }
    this.state = "listening";
    this.started = true;
    const address = this.server.server.address();
    const port = typeof address === "object" && address ? address.port : options.port;
    let host = options.host ?? "127.0.0.1";
    if (host === "0.0.0.0" || host === "::") host = "127.0.0.1";
    this.baseUrl = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
    return this.baseUrl;
  }

  /** The base URL once listening. */
  get url(): string | undefined {
    return this.baseUrl;
  }

  /** Drains: refuses new requests (503), runs the shutdown hooks, then closes the server. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** Closes gracefully on SIGTERM/SIGINT (a second signal exits at once). */
  enableShutdownSignals(options: ShutdownSignalOptions = {}): this {
    validateKeys("ShutdownSignalOptions", options, ["signals", "exit", "timeoutMs"]);
    if (options.timeoutMs !== undefined)
      checked("ShutdownSignalOptions.timeoutMs", options.timeoutMs, durationIn(1));
    const signals = options.signals ?? ["SIGTERM", "SIGINT"];
    const exit = options.exit ?? true;
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.closing) {
        if (exit) process.exit(1);
        return;
      }
      this.logger.info({ signal, app: this.title }, "shutting down");
      const guard = setTimeout(() => {
        this.logger.error(
          { app: this.title },
          `shutdown took over ${options.timeoutMs ?? 30_000} ms; exiting`,
        );
        process.exit(1);
      }, options.timeoutMs ?? 30_000);
      guard.unref();
      this.close().then(
        () => {
          clearTimeout(guard);
          if (exit) process.exit(0);
        },
        (error: unknown) => {
          clearTimeout(guard);
          this.logger.error({ err: describeThrown(error), app: this.title }, "shutdown failed");
          if (exit) process.exit(1);
        },
      );
    };
    for (const s of signals) process.on(s, onSignal);
    this.removeSignals = () => {
      for (const s of signals) process.off(s, onSignal);
    };
    return this;
  }

  private async shutdown(): Promise<void> {
    const wasStarted = this.started;
    this.state = "closing";
    let failure: unknown;
    if (wasStarted) {
      await this.runHooks(this.shutdownHooks, "onShutdown", true).catch((error: unknown) => {
        failure = error;
      });
    }
    await this.server.close();
    this.state = "closed";
    this.removeSignals?.();
    if (failure !== undefined) throw failure;
  }

  /** Runs hooks in order; with `all`, runs every hook even after one fails and throws the first failure. */
  private async runHooks(hooks: Hook[], what: string, all = false): Promise<void> {
    let first: LifecycleHookError | undefined;
    for (const [i, hook] of hooks.entries()) {
      try {
        await hook();
      } catch (error) {
        const wrapped = new LifecycleHookError(
          `${this.title}: ${what} hook #${i + 1}${hook.name ? ` (${hook.name})` : ""} failed: ` +
            `${describeThrown(error)}.` +
            (what === "onStartup" ? " The App did not start; fix the cause and create a new App." : ""),
          { cause: error },
        );
        if (!all) throw wrapped;
        first ??= wrapped;
      }
    }
    if (first) throw first;
  }

  private assertNew(what: string): void {
    if (this.state !== "new") {
      throw new StateError(
        `App.${what}(): the App is ${this.state === "starting" ? "starting" : this.state}; ` +
          "set it up before listen(), and create a new App after close().",
      );
    }
  }
}
