/**
 * One error hierarchy for everything a user can hit. Every error has a stable string `code`
 * (match on it or on the class, never on the message), a `retryable` flag (would trying the
 * same thing again later plausibly succeed?) and an optional `cause`.
 */

export interface FastAgenticErrorOptions {
  cause?: unknown;
  retryable?: boolean;
}

export class FastAgenticError extends Error {
  readonly code: string = "FA_ERROR";
  readonly retryable: boolean;

  constructor(message: string, options: FastAgenticErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryable = options.retryable ?? false;
  }
}

/** Invalid configuration or options: fix the call, retrying will not help. */
export class ConfigError extends FastAgenticError {
  override readonly code = "FA_CONFIG";
}

/** A value that cannot travel in a message (not JSON, too large, a bad name). */
export class ValidationError extends FastAgenticError {
  override readonly code: string = "FA_VALIDATION";
}

export class PayloadTooLargeError extends ValidationError {
  override readonly code = "FA_PAYLOAD_TOO_LARGE";
  constructor(
    readonly sizeBytes: number,
    readonly limitBytes: number,
    what = "task data",
  ) {
    super(
      `The ${what} encodes to ${sizeBytes} bytes, over the limit of ${limitBytes} bytes. ` +
        "Store large inputs elsewhere (object storage, a database) and send a reference, " +
        "or raise maxPayloadBytes within the broker's own limit.",
    );
  }
}

export class NotSerializableError extends ValidationError {
  override readonly code = "FA_NOT_SERIALIZABLE";
}

export class InvalidNameError extends ValidationError {
  override readonly code = "FA_INVALID_NAME";
}

/** Bytes on a task queue that are not a valid task envelope. They are dead-lettered. */
export class MalformedMessageError extends FastAgenticError {
  override readonly code = "FA_MALFORMED_MESSAGE";
}

export class NoHandlerError extends FastAgenticError {
  override readonly code = "FA_NO_HANDLER";
  constructor(
    readonly taskType: string,
    known: readonly string[],
    /** The task's tags, when what is missing is a worker carrying them all. */
    readonly tags: readonly string[] = [],
  ) {
    super(
      (tags.length > 0
        ? `No worker carrying the tags ${tags.map((t) => `"${t}"`).join(", ")} handles task type "${taskType}". `
        : `No handler is registered for task type "${taskType}". `) +
        (known.length > 0
          ? `Registered types: ${known.map((k) => `"${k}"`).join(", ")}. `
          : "No task types are registered. ") +
        `Register one with handler("${taskType}", fn) before submitting.`,
    );
  }
}

export class UnknownTaskError extends FastAgenticError {
  override readonly code = "FA_UNKNOWN_TASK";
  constructor(readonly taskId: string) {
    super(
      `No task with id "${taskId}" is known to this coordinator or queue. ` +
        "Use the id returned by submitAsync()/enqueue() on the same instance.",
    );
  }
}

export class UnknownDeadLetterError extends FastAgenticError {
  override readonly code = "FA_UNKNOWN_DEAD_LETTER";
  constructor(readonly deadLetterId: string) {
    super(
      `No dead letter with id ${typeof deadLetterId === "string" ? `"${cutText(deadLetterId, 200)}"` : `of type ${typeof deadLetterId}`} ` +
        "(any more): it was retried, deleted or purged, or the id is not one that a dead-letter list gave. " +
        "List the dead letters again for current ids.",
    );
  }
}

/** A caller's own task id reused for a different task (another type or other data). */
export class TaskIdConflictError extends FastAgenticError {
  override readonly code = "FA_TASK_ID_CONFLICT";
  constructor(
    readonly taskId: string,
    what: string,
  ) {
    super(
      `Task id "${taskId}" is already used by a task with ${what}. Re-send the same type and data ` +
        "to get that task again (an idempotent submit), or choose a new id for a new task.",
    );
  }
}

export class QueueFullError extends FastAgenticError {
  override readonly code = "FA_QUEUE_FULL";
  constructor(
    readonly queueSize: number,
    readonly maxQueueSize: number,
  ) {
    super(
      `The queue holds ${queueSize} tasks, its maxQueueSize is ${maxQueueSize}. ` +
        "Retry later, add workers, or raise maxQueueSize.",
      { retryable: true },
    );
  }
}

/** Base of the errors that carry the outcome of a task that did not complete. */
export class TaskError extends FastAgenticError {
  override readonly code: string = "FA_TASK";
  constructor(
    message: string,
    readonly taskId: string,
    options: FastAgenticErrorOptions = {},
  ) {
    super(message, options);
  }
}

export class TaskFailedError extends TaskError {
  override readonly code = "FA_TASK_FAILED";
  constructor(
    taskId: string,
    readonly taskError: string,
    readonly attempts: number,
  ) {
    super(`Task ${taskId} failed after ${attempts} attempt(s): ${taskError}`, taskId);
  }
}

export class TaskTimeoutError extends TaskError {
  override readonly code = "FA_TASK_TIMEOUT";
  constructor(
    taskId: string,
    readonly timeoutMs: number,
  ) {
    super(
      `Task ${taskId} did not finish within its timeout of ${timeoutMs} ms; its handler was aborted ` +
        "through ctx.signal. Raise timeoutMs if the work legitimately takes longer.",
      taskId,
    );
  }
}

export class TaskCancelledError extends TaskError {
  override readonly code = "FA_TASK_CANCELLED";
  constructor(taskId: string) {
    super(`Task ${taskId} was cancelled.`, taskId);
  }
}

/** waitFor()/waitForTask()/dequeue() gave up before the task reached a terminal state. */
export class WaitTimeoutError extends FastAgenticError {
  override readonly code = "FA_WAIT_TIMEOUT";
  constructor(
    readonly taskId: string,
    readonly timeoutMs: number,
  ) {
    super(
      `Gave up waiting for task ${taskId} after ${timeoutMs} ms; the task itself goes on. ` +
        "Wait again, or raise the wait's timeoutMs.",
      { retryable: true },
    );
  }
}

/**
 * Throw this from a handler to fail the task at once, skipping its remaining retries
 * (the equivalent of BullMQ's UnrecoverableError).
 */
export class UnrecoverableError extends FastAgenticError {
  override readonly code = "FA_UNRECOVERABLE";
}

/** The component is not in a state that allows the call (not started, stopped, draining). */
export class StateError extends FastAgenticError {
  override readonly code = "FA_STATE";
}

/** The broker connection failed, was lost, or refused an operation. */
export class TransportError extends FastAgenticError {
  override readonly code: string = "FA_TRANSPORT";
}

export class ConnectionError extends TransportError {
  override readonly code = "FA_CONNECTION";
}

export class PublishError extends TransportError {
  override readonly code = "FA_PUBLISH";
}

/** A supervisor exceeded its restart intensity and gave up on its children. */
export class EscalationError extends FastAgenticError {
  override readonly code = "FA_ESCALATION";
}

/** A startup or shutdown hook (an actor's onActorStart/onActorStop, an App's onStartup/onShutdown) failed. */
export class LifecycleHookError extends FastAgenticError {
  override readonly code = "FA_LIFECYCLE_HOOK";
}

/**
 * Throw from an `App.agentEndpoint()` handler to answer with this HTTP status (4xx or 5xx) and
 * `{ error: { code, message } }`; other errors become a 500 without their details.
 */
export class HttpError extends FastAgenticError {
  override readonly code: string;
  constructor(
    readonly statusCode: number,
    message: string,
    options: FastAgenticErrorOptions & { code?: string } = {},
  ) {
    super(message, options);
    if (!Number.isInteger(statusCode) || statusCode < 400 || statusCode > 599) {
      throw new ConfigError(
        `HttpError: statusCode must be an HTTP error status (400-599), got ${statusCode}.`,
      );
    }
    this.code = options.code ?? "FA_HTTP";
  }
}

/**
 * A compare-and-set write found the value at another revision than expected: someone else wrote
 * it since it was read (for an entity, another holder; a frozen one woken up is refused this way).
 */
export class StateConflictError extends FastAgenticError {
  override readonly code = "FA_STATE_CONFLICT";
  constructor(
    readonly scope: string,
    readonly key: string,
    readonly expected: number | null,
  ) {
    super(
      `The value of ${scope}/${JSON.stringify(key)} is no longer at revision ${expected ?? "(none)"}: ` +
        "it was written since it was read. Read it again and retry on the new value.",
      { retryable: true },
    );
  }
}

/** Base of the errors an entity's ask() answers with; `entity` is the type, `entityId` the id. */
export class EntityError extends FastAgenticError {
  override readonly code: string = "FA_ENTITY";
  constructor(
    message: string,
    readonly entity: string,
    readonly entityId: string,
    options: FastAgenticErrorOptions = {},
  ) {
    super(message, options);
  }
}

/** The entity's machine has no transition for the event in its current state: nothing changed. */
export class EntityRejectedError extends EntityError {
  override readonly code = "FA_ENTITY_REJECTED";
  constructor(
    entity: string,
    entityId: string,
    readonly eventType: string,
    readonly state: unknown,
  ) {
    super(
      `${entity} ${JSON.stringify(entityId)} rejected the event ${shownType(eventType)}: no transition takes it in ` +
        `state ${cutText(JSON.stringify(state) ?? "undefined", 200)}. Its state is unchanged; send an event the current state accepts.`,
      entity,
      entityId,
    );
  }
}

/** The entity's machine (a guard, an assign, a reducer method) threw on the event: nothing changed. */
export class EntityEventError extends EntityError {
  override readonly code = "FA_ENTITY_EVENT_FAILED";
  constructor(
    entity: string,
    entityId: string,
    readonly eventType: string,
    readonly reason: string,
  ) {
    super(
      `${entity} ${JSON.stringify(entityId)} failed on the event ${shownType(eventType)}: ${reason}. ` +
        "Its state is unchanged; fix the machine (guards and assigns must not throw) or the event.",
      entity,
      entityId,
    );
  }
}

/**
 * The stored snapshot cannot become this machine's state: written by another machine version
 * without a migrate() for it, or its state no longer exists. The stored state is left as it is.
 */
export class EntitySnapshotError extends EntityError {
  override readonly code = "FA_ENTITY_SNAPSHOT";
}

/** ask() got no answer in time; the event itself is durable and may still be applied. */
export class EntityAskTimeoutError extends EntityError {
  override readonly code = "FA_ENTITY_ASK_TIMEOUT";
  constructor(
    entity: string,
    entityId: string,
    readonly eventId: string,
    readonly timeoutMs: number,
  ) {
    super(
      `No answer from ${entity} ${JSON.stringify(entityId)} within ${timeoutMs} ms for event ${eventId}. ` +
        "The event was enqueued durably and may still be applied: ask again with the same { id } " +
        "(it is applied at most once), or read the state with get().",
      entity,
      entityId,
      { retryable: true },
    );
  }
}

/** The longest description of a thrown value kept (error texts travel in events and HTTP bodies). */
export const MAX_ERROR_TEXT_CHARS = 8 * 1024;

/**
 * Turns anything a handler threw into a readable message without losing it. Never throws, whatever
 * it is given (a `message` getter that throws, a null-prototype object, a hostile Proxy), and never
 * returns more than `maxChars` characters: a longer text is cut, saying how much was left out.
 */
export function describeThrown(thrown: unknown, maxChars = MAX_ERROR_TEXT_CHARS): string {
  let text: string;
  try {
    text = describe(thrown);
  } catch {
    text = `a thrown ${typeof thrown} that could not be described (reading it threw)`;
  }
  return cutText(text, maxChars);
}

function describe(thrown: unknown): string {
  if (typeof thrown === "string") return thrown;
  if (thrown instanceof Error) {
    const message: unknown = thrown.message;
    if (typeof message === "string" && message.length > 0) return message;
    const name: unknown = thrown.name;
    return typeof name === "string" && name.length > 0 ? name : "Error";
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(thrown);
  } catch {
    json = undefined;
  }
  return `non-Error value thrown: ${json ?? String(thrown)}`;
}

/** An entity event's type as a message shows it: quoted, and cut when long. */
function shownType(type: string): string {
  return JSON.stringify(cutText(String(type), 100));
}

/** `text`, or its first `maxChars` characters and a marker saying how many were cut. */
export function cutText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  return `${text.slice(0, Math.max(0, maxChars))}… [${text.length - maxChars} more characters cut]`;
}
