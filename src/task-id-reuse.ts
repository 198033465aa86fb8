/**
 * A caller's own task id makes a submit idempotent: the same id with the same type and data is the
 * same task, sent once. The same id with another type or other data is a different task that
 * cannot have that id: a TaskIdConflictError (HTTP 409), never the first task's result.
 */
import { TaskIdConflictError } from "./errors.js";
import type { Task } from "./types.js";

/** Throws TaskIdConflictError unless `type` and `data` are those of the task already known by that id. */
export function assertSameTask(known: Pick<Task, "id" | "type" | "data">, type: string, data: unknown): void {
  if (known.type !== type) {
    throw new TaskIdConflictError(known.id, `the type "${known.type}", not "${type}"`);
  }
  if (!jsonEqual(known.data, data === undefined ? null : data)) {
    throw new TaskIdConflictError(known.id, "other data");
  }
}

/** Deep equality of two JSON values (object key order aside). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = Object.keys(ra).filter((k) => ra[k] !== undefined);
  if (keys.length !== Object.keys(rb).filter((k) => rb[k] !== undefined).length) return false;
  for (const k of keys) if (!Object.hasOwn(rb, k) || !jsonEqual(ra[k], rb[k])) return false;
  return true;
}
