/**
 * Public dead-letter ids and list cursors. An id names the work queue and the transport's own id
 * of the letter, `<letter>~<work queue>` (e.g. `17~q.default.resize`): readable in a CLI, safe in
 * a URL path, and checked strictly when it comes back (anything else is simply not found).
 * A cursor is opaque (base64url of the work queue and the transport's cursor).
 */
import { logicalNameProblem } from "../../transports/transport.js";
import { ValidationError } from "../errors.js";

export interface DeadLetterRef {
  /** The work queue. */
  queue: string;
  /** The transport's id of the letter in that queue. */
  letter: string;
}

const LETTER = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_ID = 300;

export function formatDeadLetterId(ref: DeadLetterRef): string {
  return `${ref.letter}~${ref.queue}`;
}

/** The parts of a public id, or undefined when it cannot be one. */
export function parseDeadLetterId(id: unknown): DeadLetterRef | undefined {
  if (typeof id !== "string" || id.length > MAX_ID) return undefined;
  const at = id.indexOf("~");
  if (at <= 0) return undefined;
  const letter = id.slice(0, at);
  const queue = id.slice(at + 1);
  if (!LETTER.test(letter) || logicalNameProblem(queue) !== undefined) return undefined;
  return { queue, letter };
}

export function encodeCursor(queue: string, inner: string | undefined): string {
  return Buffer.from(JSON.stringify(inner === undefined ? [queue] : [queue, inner])).toString("base64url");
}

export function decodeCursor(cursor: string): { queue: string; inner: string | undefined } {
  const bad = () =>
    new ValidationError(
      "Invalid dead-letter cursor: pass back the `next` value of the previous page unchanged, or omit it to start over.",
    );
  if (typeof cursor !== "string" || cursor.length > 1024 || !/^[A-Za-z0-9_-]*$/.test(cursor)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length < 1 || parsed.length > 2) throw bad();
  const [queue, inner] = parsed as unknown[];
  if (typeof queue !== "string" || logicalNameProblem(queue) !== undefined) throw bad();
  if (inner !== undefined && (typeof inner !== "string" || inner.length > 512)) throw bad();
  return { queue, inner: inner as string | undefined };
}
