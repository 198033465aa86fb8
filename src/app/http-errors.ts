/**
 * Every error an HTTP route can meet, mapped to a status and `{ error: { code, message } }`: the
 * library's errors keep their code and their message (written for users); Fastify's own request
 * errors get a clear message; anything else is a 500 that names the request id and never a stack.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import {
  ConfigError,
  describeThrown,
  FastAgenticError,
  HttpError,
  NoHandlerError,
  PayloadTooLargeError,
  QueueFullError,
  StateError,
  TaskCancelledError,
  TaskError,
  TaskFailedError,
  TaskTimeoutError,
  TransportError,
  UnknownDeadLetterError,
  UnknownTaskError,
  ValidationError,
  WaitTimeoutError,
} from "../errors.js";
import type { Logger } from "../logger.js";
import type { TaskStatus } from "../types.js";

export interface HttpErrorBody {
  error: { code: string; message: string; taskId?: string; status?: TaskStatus };
}

export interface HttpFailure {
  status: number;
  body: HttpErrorBody;
  headers?: Record<string, string>;
}

export interface HttpErrorOptions {
  /** The body limit in bytes, for the 413 message. */
  bodyLimit?: number;
  /** Retry-After (seconds) of a 503 for a full queue. */
  retryAfterSeconds?: number;
  /** False: a failed task's error message (its handler's) is replaced by a generic one. Default true. */
  exposeTaskErrors?: boolean;
}

/** What a client reads instead of a task's error when task errors are hidden. */
export const HIDDEN_TASK_ERROR =
  "The task failed; its error is not shown to HTTP clients (exposeTaskErrors is false). The server log and the dashboard have it.";

const fail = (
  status: number,
  code: string,
  message: string,
  extra: Partial<HttpErrorBody["error"]> = {},
) => ({
  status,
  body: { error: { code, message, ...extra } },
});

/** The status of each library error (checked in order: subclasses first). */
const STATUS: Array<[abstract new (...args: never[]) => Error, number]> = [
  [UnknownTaskError, 404],
  [UnknownDeadLetterError, 404],
  [QueueFullError, 503],
  [PayloadTooLargeError, 413],
  [ValidationError, 400],
  [ConfigError, 400],
  [TaskTimeoutError, 504],
  [TaskCancelledError, 409],
  [TaskFailedError, 500],
  [WaitTimeoutError, 504],
  [StateError, 503],
  [TransportError, 503],
  [NoHandlerError, 500],
];

const TASK_STATUS: Record<string, TaskStatus> = {
  FA_TASK_FAILED: "failed",
  FA_TASK_TIMEOUT: "timeout",
  FA_TASK_CANCELLED: "cancelled",
};

export function toHttpFailure(error: unknown, options: HttpErrorOptions = {}): HttpFailure | undefined {
  if (error instanceof HttpError) return fail(error.statusCode, error.code, error.message);
  if (error instanceof FastAgenticError) {
    const status = STATUS.find(([cls]) => error instanceof cls)?.[1] ?? 500;
    const extra: Partial<HttpErrorBody["error"]> = {};
    if (error instanceof TaskError) {
      extra.taskId = error.taskId;
      const taskStatus = TASK_STATUS[error.code];
      if (taskStatus) extra.status = taskStatus;
    }
    const hide = options.exposeTaskErrors === false && error instanceof TaskFailedError;
    const failure: HttpFailure = fail(status, error.code, hide ? HIDDEN_TASK_ERROR : error.message, extra);
    if (error instanceof QueueFullError) {
      failure.headers = { "retry-after": String(options.retryAfterSeconds ?? 1) };
    }
    return failure;
  }
  return fastifyFailure(error as Partial<FastifyError>, options);
}

/** Fastify's request errors (bad JSON, too large, schema validation…), or undefined for others. */
function fastifyFailure(error: Partial<FastifyError>, options: HttpErrorOptions): HttpFailure | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  if (error.validation !== undefined) {
    return fail(400, "FA_BAD_REQUEST", `Invalid request: ${error.message}.`);
  }
  switch (error.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return fail(400, "FA_INVALID_JSON", "The request body is not valid JSON; send a JSON document.");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return fail(400, "FA_BAD_REQUEST", "The request body is empty; send a JSON document.");
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return fail(
        413,
        "FA_PAYLOAD_TOO_LARGE",
        `The request body is over the limit of ${options.bodyLimit ?? "the configured"} bytes. Send ` +
          "large inputs by reference (a URL or an object-store key), or raise the App's bodyLimit.",
      );
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return fail(
        415,
        "FA_UNSUPPORTED_MEDIA_TYPE",
        "Send the body as JSON, with content-type: application/json.",
      );
  }
  const status = error.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500 && typeof error.message === "string") {
    return fail(status, "FA_BAD_REQUEST", error.message);
  }
  return undefined;
}

/** A Fastify error handler answering with toHttpFailure(), or a logged 500. */
export function httpErrorHandler(logger: Logger, options: HttpErrorOptions = {}) {
  return (error: unknown, request: FastifyRequest, reply: FastifyReply): void => {
    let failure: HttpFailure | undefined;
    try {
      failure = toHttpFailure(error, options);
    } catch {
      failure = undefined; // a thrown value that throws when looked at (a hostile Proxy…): a plain 500
    }
    if (failure === undefined) {
      logger.error({ err: loggable(error), reqId: request.id, url: request.url }, "request failed");
    } else if (failure.status >= 500) {
      const code = failure.body.error.code;
      const message = error instanceof Error ? error.message : failure.body.error.message;
      logger.warn({ code, reason: message, reqId: request.id, url: request.url }, "request failed");
    }
    failure ??= fail(
      500,
      "FA_INTERNAL",
      `Internal server error while handling request ${request.id}; the server log has the details.`,
    );
    reply.code(failure.status);
    if (failure.headers) reply.headers(failure.headers);
    void reply.send(failure.body);
  };
}

/** The error itself for the log (its stack helps) when reading it is safe; else its description. */
function loggable(error: unknown): unknown {
  try {
    if (error instanceof Error && typeof error.message === "string" && typeof error.stack === "string") {
      return error;
    }
  } catch {
    // described below
  }
  return describeThrown(error);
}
