/** Option parsing shared by the CLI commands. */

import type { Transport } from "../../transports/transport.js";
import { ConfigError } from "../errors.js";
import { getDefaultLogger, type Logger } from "../logger.js";
import { transportFromUrl } from "../transport-url.js";
import { TaskPriority } from "../types.js";

export interface TransportFlags {
  transport?: string;
  namespace?: string;
  queue?: string;
  /** Adapter options as JSON, e.g. '{"ackWaitMs": 5000}' (NATS) or '{"heartbeatSeconds": 5}' (AMQP). */
  transportOptions?: Record<string, unknown>;
}

/**
 * The broker transport a command talks to other processes through. An in-process transport
 * (memory://, also the default when neither --transport nor $FASTAGENTIC_TRANSPORT is given)
 * reaches no other process, so it is refused (a ConfigError: exit 2).
 */
export function transportOf(flags: TransportFlags, command: string): Transport {
  const url = flags.transport || process.env["FASTAGENTIC_TRANSPORT"] || "memory://";
  const transport = transportFromUrl(url, {
    ...flags.transportOptions,
    ...(flags.namespace ? { namespace: flags.namespace } : {}),
  });
  if (transport.kind === "memory") {
    const given = flags.transport || process.env["FASTAGENTIC_TRANSPORT"];
    throw new ConfigError(
      `${command} needs a broker shared with other processes, but ` +
        (given
          ? `the transport is ${given}, which`
          : "no --transport was given and $FASTAGENTIC_TRANSPORT is not set; memory://") +
        " lives inside this one process. Pass --transport nats://host:4222 or amqp://user:pass@host:5672 " +
        "(or set FASTAGENTIC_TRANSPORT).",
    );
  }
  return transport;
}

export function jsonObjectOption(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError(
      `--transport-options must be a JSON object, e.g. '{"ackWaitMs": 5000}'; got ${value}.`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`--transport-options must be a JSON object; got ${value}.`);
  }
  return parsed as Record<string, unknown>;
}

/** An integer flag from `min` to `max` (durations: at most MAX_DURATION_MS, about 24.8 days). */
export function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${value}".`);
    return n;
  };
}

export function listOption(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function priorityOption(value: string): TaskPriority {
  const key = value.toUpperCase() as keyof typeof TaskPriority;
  if (key in TaskPriority) return TaskPriority[key];
  const n = Number(value);
  if ((Object.values(TaskPriority) as number[]).includes(n)) return n as TaskPriority;
  throw new ConfigError(
    `--priority must be low, normal, high or critical (or 0, 5, 10, 20), got "${value}".`,
  );
}

export function restartOption(value: string): "transient" | "permanent" {
  if (value === "transient" || value === "permanent") return value;
  throw new ConfigError(`--restart must be transient or permanent, got "${value}".`);
}

export function cliLogger(): Logger {
  return getDefaultLogger();
}

/** Parses a JSON command-line argument (task or event data); undefined stays null. */
export function jsonArgument(json: string | undefined, what: string, example: string): unknown {
  if (json === undefined) return null;
  try {
    return JSON.parse(json);
  } catch (error) {
    throw new ConfigError(
      `The ${what} must be JSON, e.g. '${example}'; got ${json} (${(error as Error).message}).`,
    );
  }
}
