/**
 * The dashboard as a Fastify plugin (`app.mountDashboard(coordinator, { path })` mounts it, behind
 * the App's auth like every route): one page and its assets, shipped in the package (no CDN, no
 * build step), a Server-Sent Events feed, and the JSON it reads:
 *   GET  <path>/                 the page          GET <path>/assets/:file  its script, styles, uPlot
 *   GET  <path>/events           the live feed (text/event-stream: hello, then a tick per interval)
 *   GET  <path>/api/tasks?status=&type=&limit=   recent and open tasks   GET <path>/api/tasks/:id  one
 *   …/api/dead-letters …         the dead-letter routes (see dead-letter-routes.ts)
 *   GET  <path>/api/entities, <path>/api/entities/:type?id=   entity types; one entity's snapshot
 *   GET  <path>/api/providers/:name/lookup?id=   a provider's lookup
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import type { Coordinator } from "../../coordinator.js";
import { HttpError, UnknownTaskError, ValidationError } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { assertTaskType } from "../../names.js";
import { TaskStatus } from "../../types.js";
import { deadLetterRoutes, intOf, readQuery } from "../dead-letter-routes.js";
import { httpErrorHandler } from "../http-errors.js";
import { builtinProviders } from "./builtin-providers.js";
import { DashboardFeed, type DashboardFeedOptions } from "./dashboard-feed.js";
import type { DashboardProvider } from "./dashboard-provider.js";
import { entityRoutes, entityTypeNames } from "./entity-routes.js";

export interface DashboardOptions extends Partial<Omit<DashboardFeedOptions, "providers">> {
  /** Where the page lives. Default "/dashboard". */
  path?: string;
  /** More panels: entities, your own (see dashboard-provider.ts); event groups are added when the transport has an event log. */
  providers?: readonly DashboardProvider[];
  /** Entity types (defineEntity() definitions, @Entity classes) the entities panel lists by name, besides the coordinator's own. */
  entities?: readonly unknown[];
}

const require = createRequire(import.meta.url);
const ASSET_DIR = new URL("./assets/", import.meta.url);

const CONTENT_TYPES: Record<string, string> = {
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
  "uPlot.js": "text/javascript; charset=utf-8",
  "uPlot.css": "text/css; charset=utf-8",
};

/** The page and its files, read once (they ship in the package, beside this module). */
function loadAssets(): { index: string; files: Map<string, Buffer> } {
  const files = new Map<string, Buffer>([
    ["app.js", readFileSync(new URL("app.js", ASSET_DIR))],
    ["app.css", readFileSync(new URL("app.css", ASSET_DIR))],
    ["uPlot.js", readFileSync(require.resolve("uplot/dist/uPlot.iife.min.js"))],
    ["uPlot.css", readFileSync(require.resolve("uplot/dist/uPlot.min.css"))],
  ]);
  return { index: readFileSync(new URL("index.html", ASSET_DIR), "utf8"), files };
}

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

const STATUSES = new Set<string>(Object.values(TaskStatus));
const PROVIDER_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function normalizeDashboardPath(path: string | undefined): string {
  const p = path ?? "/dashboard";
  if (typeof p !== "string" || !/^\/[A-Za-z0-9_\-/.]*$/.test(p) || p.includes("..")) {
    throw new ValidationError(
      `Invalid dashboard path ${JSON.stringify(p)}: use a path such as "/dashboard" (letters, digits, "-", "_", "/").`,
    );
  }
  return p === "/" ? "" : `/${p.replace(/^\/+|\/+$/g, "")}`;
}

export function dashboardRoutes(
  coordinator: Coordinator,
  options: DashboardOptions,
  context: { logger: Logger; bodyLimit?: number },
): { plugin: FastifyPluginAsync; feed: DashboardFeed } {
  const own = options.providers ?? [];
  const providers = [
    ...own,
    ...builtinProviders(coordinator).filter((b) => !own.some((p) => p.name === b.name)),
  ];
  for (const p of providers) {
    if (!PROVIDER_NAME.test(p.name))
      throw new ValidationError(`Invalid dashboard provider name ${JSON.stringify(p.name)}.`);
  }
  const entityTypes = entityTypeNames(options.entities);
  const feed = new DashboardFeed(coordinator, {
    intervalMs: options.intervalMs ?? 1000,
    historySeconds: options.historySeconds ?? 900,
    maxClients: options.maxClients ?? 32,
    recentTasks: options.recentTasks ?? 500,
    providers,
    ...(options.maxBufferedBytes === undefined ? {} : { maxBufferedBytes: options.maxBufferedBytes }),
  });
  const assets = loadAssets();
  const plugin: FastifyPluginAsync = async (fastify: FastifyInstance) => {
    fastify.setErrorHandler(httpErrorHandler(context.logger, { bodyLimit: context.bodyLimit }));
    fastify.addHook("preClose", async () => feed.close());

    fastify.get("/", async (request, reply) => {
      const [path] = request.url.split("?") as [string];
      if (!path.endsWith("/")) return reply.redirect(`${path}/`);
      return reply.headers(SECURITY_HEADERS).type("text/html; charset=utf-8").send(assets.index);
    });

    fastify.get("/assets/:file", async (request, reply) => {
      const { file } = request.params as { file: string };
      const body = assets.files.get(file);
      if (!body)
        throw new HttpError(404, `The dashboard has no file "${file.slice(0, 64)}".`, {
          code: "FA_NOT_FOUND",
        });
      return reply
        .headers(SECURITY_HEADERS)
        .type(CONTENT_TYPES[file] as string)
        .send(body);
    });

    fastify.get("/events", async (request, reply) => {
      readQuery(request.query, []);
      if (feed.clientCount >= feed.options.maxClients) {
        throw new HttpError(
          503,
          `The dashboard serves ${feed.options.maxClients} pages at most; close one or raise maxClients.`,
          {
            code: "FA_TOO_MANY_CLIENTS",
          },
        );
      }
      reply.hijack();
      reply.raw.writeHead(200, {
        ...SECURITY_HEADERS,
        "content-type": "text/event-stream; charset=utf-8",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      reply.raw.write("retry: 2000\n\n");
      feed.attach(reply.raw);
    });

    fastify.get("/api/tasks", async (request) => {
      const q = readQuery(request.query, ["status", "type", "limit"]);
      if (q["status"] !== undefined && !STATUSES.has(q["status"])) {
        throw new ValidationError(
          `Unknown status "${q["status"].slice(0, 32)}": use ${[...STATUSES].join(", ")}.`,
        );
      }
      if (q["type"] !== undefined) assertTaskType(q["type"]);
      const limit = q["limit"] === undefined ? 100 : intOf(q["limit"], "limit");
      if (limit < 1 || limit > 500) throw new ValidationError("limit must be 1 to 500.");
      return {
        tasks: feed.tasks({
          limit,
          ...(q["status"] ? { status: q["status"] } : {}),
          ...(q["type"] ? { type: q["type"] } : {}),
        }),
      };
    });

    fastify.get("/api/tasks/:id", async (request) => {
      const { id } = request.params as { id: string };
      const task = await coordinator.getTask(id);
      if (!task) throw new UnknownTaskError(id);
      return { ...task, attempts: task.retryCount + 1 };
    });

    fastify.get("/api/providers/:name/lookup", async (request) => {
      const { name } = request.params as { name: string };
      const { id } = readQuery(request.query, ["id"]);
      const provider = providers.find((p) => p.name === name);
      if (!provider?.lookup) throw new HttpError(404, "No such dashboard lookup.", { code: "FA_NOT_FOUND" });
      if (!id || id.length > 256)
        throw new ValidationError("Give the id to look up (1-256 characters) as ?id=.");
      const found = await provider.lookup(id);
      if (found === undefined)
        throw new HttpError(404, `${provider.title}: nothing with id "${id}".`, { code: "FA_NOT_FOUND" });
      return found;
    });

    await fastify.register(async (api) => deadLetterRoutes(api, coordinator.deadLetters), { prefix: "/api" });
    await fastify.register(async (api) => entityRoutes(api, coordinator, entityTypes), { prefix: "/api" });
  };
  return { plugin, feed };
}
