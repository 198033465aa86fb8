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

export function transportOf(flags: TransportFlags): Transport {
  const url = flags.transport ?? process.env["FASTAGENTIC_TRANSPORT"] ?? "memory://";
  return transportFromUrl(url, {
    ...flags.transportOptions,
    ...(flags.namespace ? { namespace: flags.namespace } : {}),
  });
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

export function intOption(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new ConfigError(`${name} must be an integer ≥ ${min}, got "${value}".`);
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
