/**
 * The REST surface of a coordinator, as a Fastify plugin (`app.mountCoordinator()` mounts it; with
 * your own Fastify: `fastify.register(coordinatorRoutes(coordinator), { prefix })`).
 *   POST   /tasks      submit: 202 + the task, or with `wait: true` 200 + the result
 *   GET    /tasks/:id  the task        DELETE /tasks/:id  cancel it
 *   GET    /workers    GET /stats      GET /health (503 unless running)    GET /metrics (Prometheus)
 */
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import { definedOnly } from "../config.js";
import type { Coordinator } from "../coordinator.js";
import { HttpError, NoHandlerError, UnknownTaskError, WaitTimeoutError } from "../errors.js";
import { checked, durationIn, intIn, LIMITS, MAX_DURATION_MS } from "../limits.js";
import { getDefaultLogger, type Logger } from "../logger.js";
import { unwrapResult } from "../submit.js";
import { type SubmitOptions, type Task, TaskPriority } from "../types.js";
import { deadLetterRoutes } from "./dead-letter-routes.js";
import { HIDDEN_TASK_ERROR, httpErrorHandler } from "./http-errors.js";
import { CoordinatorMetrics, type CoordinatorMetricsOptions } from "./metrics.js";

export interface CoordinatorRoutesOptions {
  /** The longest a `wait: true` submit waits before answering 202 with the task. Default 30 s. */
  maxWaitMs?: number;
  /** Retry-After (seconds) of a 503 when the queue is full. Default 1. */
  retryAfterSeconds?: number;
  /** Serve GET /metrics (default true), with these options. */
  metrics?: boolean | CoordinatorMetricsOptions;
  /** The body limit in bytes, named in 413 messages (App passes its own). */
  bodyLimit?: number;
  /** False: failed tasks' error messages are not sent to clients (App passes its own). Default true. */
  exposeTaskErrors?: boolean;
  /** Serve the dead-letter routes (GET/DELETE /dead-letters, POST …/retry). Default true. */
  deadLetters?: boolean;
  logger?: Logger;
}

interface SubmitBody {
  type: string;
  data?: unknown;
  priority?: number | string;
  timeoutMs?: number;
  retries?: number;
  tags?: string[];
  metadata?: Record<string, unknown>;
  id?: string;
  wait?: boolean;
  waitTimeoutMs?: number;
}

const PRIORITY_NAMES: Record<string, TaskPriority> = {
  low: TaskPriority.LOW,
  normal: TaskPriority.NORMAL,
  high: TaskPriority.HIGH,
  critical: TaskPriority.CRITICAL,
};

const submitSchema = {
  body: {
    type: "object",
    required: ["type"],
    additionalProperties: false,
    properties: {
      type: { type: "string", minLength: 1 },
      data: {},
      priority: {
        anyOf: [
          { type: "integer", enum: Object.values(TaskPriority) },
          { type: "string", enum: Object.keys(PRIORITY_NAMES) },
        ],
      },
      timeoutMs: { type: "integer", minimum: 1, maximum: MAX_DURATION_MS },
      retries: { type: "integer", minimum: 0, maximum: LIMITS.retries },
      tags: { type: "array", items: { type: "string" } },
      metadata: { type: "object" },
      id: { type: "string" },
      wait: { type: "boolean" },
      waitTimeoutMs: { type: "integer", minimum: 0, maximum: MAX_DURATION_MS },
    },
  },
};

const idSchema = {
  params: { type: "object", required: ["id"], properties: { id: { type: "string", minLength: 1 } } },
};

export function coordinatorRoutes(
  coordinator: Coordinator,
  options: CoordinatorRoutesOptions = {},
): FastifyPluginAsync {
  const maxWaitMs = checked("CoordinatorRoutesOptions.maxWaitMs", options.maxWaitMs ?? 30_000, durationIn(0));
  checked(
    "CoordinatorRoutesOptions.retryAfterSeconds",
    options.retryAfterSeconds ?? 1,
    intIn(0, MAX_DURATION_MS / 1000),
  );
  const logger = options.logger ?? getDefaultLogger();
  const shown = <T extends { status: string; error?: string }>(task: T): T =>
    options.exposeTaskErrors === false && task.error !== undefined && task.status !== "cancelled"
      ? { ...task, error: HIDDEN_TASK_ERROR }
      : task;
  return async (fastify: FastifyInstance) => {
    fastify.setErrorHandler(httpErrorHandler(logger, options));
    const prefix = fastify.prefix.replace(/\/$/, "");

    fastify.post("/tasks", { schema: submitSchema }, async (request, reply) => {
      const body = request.body as SubmitBody;
      const submit: SubmitOptions = definedOnly({
        priority: typeof body.priority === "string" ? PRIORITY_NAMES[body.priority] : body.priority,
        timeoutMs: body.timeoutMs,
        retries: body.retries,
        tags: body.tags,
        metadata: body.metadata,
        id: body.id,
      }) as SubmitOptions;
      let task: Task;
      try {
        task = await coordinator.submitAsync(body.type, body.data, submit);
      } catch (error) {
        // Here the client chose the type: an unknown one is the request's fault. The message does
        // not list the types served: the caller may be anyone.
        if (error instanceof NoHandlerError) {
          throw new HttpError(
            400,
            error.tags.length > 0
              ? `No worker serves the task type "${error.taskType}" with these tags; check the type and tags.`
              : `No worker serves the task type "${error.taskType}"; check the type's name.`,
            { code: error.code },
          );
        }
        throw error;
      }
      const location = `${prefix}/tasks/${encodeURIComponent(task.id)}`;
      if (body.wait !== true) return reply.code(202).header("location", location).send(task);
      const gone = new AbortController();
      reply.raw.once("close", () => gone.abort());
      try {
        const result = await coordinator.waitFor(task.id, {
          timeoutMs: Math.min(body.waitTimeoutMs ?? maxWaitMs, maxWaitMs),
          signal: gone.signal,
        });
        unwrapResult(result, task); // throws the outcome's error unless it completed
        return reply.code(200).send(result);
      } catch (error) {
        if (!(error instanceof WaitTimeoutError)) throw error;
        const latest = (await coordinator.getTask(task.id)) ?? task;
        return reply.code(202).header("location", location).send(shown(latest));
      }
    });

    fastify.get("/tasks/:id", { schema: idSchema }, async (request) => {
      const { id } = request.params as { id: string };
      const task = await coordinator.getTask(id);
      if (!task) throw new UnknownTaskError(id);
      return shown(task);
    });

    fastify.delete("/tasks/:id", { schema: idSchema }, async (request) => {
      const { id } = request.params as { id: string };
      const result = await coordinator.cancelTask(id);
      if (result.status !== "cancelled") {
        throw new HttpError(
          409,
          `Task ${id} already finished (${result.status}); only a pending, queued or running task can be cancelled.`,
          { code: "FA_TASK_FINISHED" },
        );
      }
      return result;
    });

    // Workers' pids and host names: keep the App behind `auth` where that matters.
    fastify.get("/workers", async () => ({ workers: await coordinator.getWorkers() }));

    if (options.deadLetters !== false) await deadLetterRoutes(fastify, coordinator.deadLetters);

    fastify.get("/stats", async () => coordinator.getStats());

    fastify.get("/health", async (_request, reply) => {
      const stats = coordinator.getStats();
      const ok = stats.state === "running";
      return reply.code(ok ? 200 : 503).send({
        status: ok ? "ok" : "unavailable",
        state: stats.state,
        workers: stats.workers.clusterWorkers,
        queueSize: stats.queue.queueSize,
      });
    });

    if (options.metrics !== false) {
      const metrics = new CoordinatorMetrics(coordinator, options.metrics === true ? {} : options.metrics);
      fastify.addHook("onClose", async () => metrics.close());
      fastify.get("/metrics", async (_request, reply) =>
        reply.type(metrics.contentType).send(await metrics.metrics()),
      );
    }
  };
}
