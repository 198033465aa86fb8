/**
 * The assertions of the fuzz test (test/integration/hostile/fuzz.test.ts): a call settles in time,
 * and either works or rejects with a typed error; an HTTP error has the one body shape and a 4xx
 * status; no text shows a URL's password or a stack. Every failure names the seed that reproduces it.
 */
import { FastAgenticError } from "fastagentic";
import { AMQP_URL, NATS_URL } from "../../helpers/brokers.js";
import { fuzzSeed, Rng } from "../../helpers/fuzz-values.js";

/** The run's seed (FA_FUZZ_SEED), iterations per part (FA_FUZZ_ITERATIONS) and time per part (FA_FUZZ_PART_MS). */
export const FUZZ = {
  seed: fuzzSeed(),
  iterations: Number(process.env["FA_FUZZ_ITERATIONS"] ?? "") || 150,
  partMs: Number(process.env["FA_FUZZ_PART_MS"] ?? "") || 8000,
};

/** Runs `step` for each iteration until FUZZ.iterations or FUZZ.partMs, with a generator of its own. */
export async function iterate(
  kind: string,
  part: string,
  step: (rng: Rng, where: string) => Promise<void>,
  iterations = FUZZ.iterations,
): Promise<void> {
  const rng = new Rng(FUZZ.seed).fork(`${kind}/${part}`);
  const until = Date.now() + FUZZ.partMs;
  for (let i = 0; i < iterations && Date.now() < until; i++) {
    await step(rng, `[FA_FUZZ_SEED=${FUZZ.seed}] ${kind} ${part} #${i}`);
  }
}

/** The passwords in the URLs the fuzz test uses (its own, the test broker's): no text may show them. */
const PASSWORDS = ["S3cr3tPw", ...passwordOf(AMQP_URL), ...passwordOf(NATS_URL)];

function passwordOf(url: string): string[] {
  const password = new URL(url).password;
  return password === "" ? [] : [`:${decodeURIComponent(password)}@`, `:${password}@`];
}
/** A stack frame: what no client-facing text may show. */
const STACK_FRAME = /\n\s+at [^\n]+:\d+:\d+/;

/** A value as a failure message shows it; never throws. */
export function shown(value: unknown): string {
  try {
    if (value instanceof Error) return `${value.name}: ${value.message}`.slice(0, 500);
    return String(value).slice(0, 500);
  } catch {
    return `a ${typeof value} that cannot be shown`;
  }
}

/** A value (options, data) as a failure message shows it: JSON with NaN, BigInts… by name; never throws. */
export function brief(value: unknown): string {
  try {
    const text = JSON.stringify(value, (_k, v) =>
      typeof v === "bigint" ||
      typeof v === "symbol" ||
      typeof v === "function" ||
      Number.isNaN(v) ||
      v === Infinity ||
      v === -Infinity
        ? `<${typeof v === "bigint" ? `${v}n` : String(v)}>`
        : v === undefined
          ? "<undefined>"
          : v,
    );
    return (text ?? String(value)).slice(0, 300);
  } catch {
    return shown(value);
  }
}

export type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Runs `call` (a throw counts as a rejection); fails when it has not settled within `ms`. */
export async function settle(where: string, call: () => unknown, ms = 15_000): Promise<Settled> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${where}: did not settle within ${ms} ms`)), ms);
  });
  try {
    const value = await Promise.race([Promise.resolve().then(call), hang]);
    return { ok: true, value };
  } catch (error) {
    if (error instanceof Error && error.message.startsWith(`${where}: did not settle`)) throw error;
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

/** Fails unless the call worked or rejected with a typed error. */
export function expectSettled(result: Settled, where: string, sent?: unknown): void {
  if (!result.ok) expectTyped(result.error, where, sent);
}

/** Fails unless `error` is a FastAgenticError with a string code, whose message leaks nothing. */
export function expectTyped(error: unknown, where: string, sent?: unknown): FastAgenticError {
  if (!(error instanceof FastAgenticError)) {
    throw new Error(`${where}: rejected with something that is not a FastAgenticError: ${shown(error)}`);
  }
  if (typeof error.code !== "string" || error.code.length === 0) {
    throw new Error(`${where}: ${error.name} has no string code`);
  }
  if (typeof error.message !== "string" || error.message.length === 0) {
    throw new Error(`${where}: ${error.name} (${error.code}) has no message`);
  }
  expectNoLeak(error.message, where);
  if (typeof sent === "number" && !Number.isFinite(sent) && /got null\b/.test(error.message)) {
    throw new Error(`${where}: ${shown(sent)} is shown as null: ${error.message}`);
  }
  return error;
}

/** Fails when `text` shows a URL's password or a stack frame. */
export function expectNoLeak(text: string, where: string): void {
  if (PASSWORDS.some((p) => text.includes(p)))
    throw new Error(`${where}: a URL password is shown: ${text.slice(0, 300)}`);
  if (STACK_FRAME.test(text)) throw new Error(`${where}: a stack trace is shown: ${text.slice(0, 300)}`);
}

/**
 * The 5xx codes a client can meet without a defect: a task's own outcome (`wait: true` on a task
 * that failed or timed out), and a broker or queue that cannot take the request now.
 */
const ALLOWED_5XX = new Set([
  "FA_TASK_FAILED",
  "FA_TASK_TIMEOUT",
  "FA_WAIT_TIMEOUT",
  "FA_QUEUE_FULL",
  "FA_TRANSPORT",
  "FA_CONNECTION",
  "FA_PUBLISH",
]);
const ERROR_KEYS = new Set(["code", "message", "taskId", "status"]);

/** Checks one HTTP answer: an error is `{ error: { code, message } }` with a 4xx (or an allowed 5xx). */
export function expectHttpAnswer(
  where: string,
  method: string,
  status: number,
  body: string,
  contentType: string | undefined,
): void {
  expectNoLeak(body, where);
  if (status < 400 || method === "HEAD") return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new Error(`${where}: the ${status} body is not JSON (${contentType}): ${body.slice(0, 300)}`);
  }
  const error = (parsed as { error?: Record<string, unknown> } | null)?.error;
  if (
    typeof error !== "object" ||
    error === null ||
    Object.keys(parsed as object).length !== 1 ||
    typeof error["code"] !== "string" ||
    typeof error["message"] !== "string" ||
    Object.keys(error).some((k) => !ERROR_KEYS.has(k))
  ) {
    throw new Error(
      `${where}: the ${status} body is not { error: { code, message } }: ${body.slice(0, 300)}`,
    );
  }
  if (status >= 500 && !ALLOWED_5XX.has(error["code"] as string)) {
    throw new Error(`${where}: ${status} ${error["code"]}: ${String(error["message"]).slice(0, 300)}`);
  }
}

/** Splits a raw HTTP/1.1 answer (Connection: close) into status and body (de-chunked). */
export function parseRawAnswer(answer: string): { status: number; headers: string; body: string } {
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? Number.NaN);
  const split = answer.indexOf("\r\n\r\n");
  const headers = split < 0 ? answer : answer.slice(0, split);
  let body = split < 0 ? "" : answer.slice(split + 4);
  if (/^transfer-encoding:\s*chunked/im.test(headers)) {
    let out = "";
    let rest = body;
    for (;;) {
      const line = rest.indexOf("\r\n");
      const size = Number.parseInt(rest.slice(0, line), 16);
      if (line < 0 || !(size > 0)) break;
      out += rest.slice(line + 2, line + 2 + size);
      rest = rest.slice(line + 2 + size + 2);
    }
    body = out;
  }
  return { status, headers, body };
}
