import { randomBytes } from "node:crypto";

const processPrefix = randomBytes(6).toString("base64url");
let counter = 0;

/** A unique id: a random per-process prefix and a counter (cheap on the hot path). */
export function newId(kind: string): string {
  return `${kind}-${processPrefix}-${(++counter).toString(36)}`;
}
