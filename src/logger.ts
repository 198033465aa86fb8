/**
 * Logging through a pino-compatible interface: pass your own pino (or any logger with the same
 * methods) as `logger`; by default a pino instance writes warnings and errors to stderr, and
 * FASTAGENTIC_LOG_LEVEL (trace|debug|info|warn|error|silent) changes the level.
 */
import { pino } from "pino";

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child?(bindings: Record<string, unknown>): Logger;
}

let defaultLogger: Logger | undefined;

export function getDefaultLogger(): Logger {
  if (!defaultLogger) {
    defaultLogger = pino(
      { name: "fastagentic", level: process.env["FASTAGENTIC_LOG_LEVEL"] ?? "warn" },
      pino.destination(2),
    );
  }
  return defaultLogger;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export function childLogger(logger: Logger, bindings: Record<string, unknown>): Logger {
  return logger.child ? logger.child(bindings) : logger;
}
