/**
 * One RabbitMQ test file at a time. Some of them stop the broker's application, lower its
 * memory watermark or its consumer timeout: a test file running in parallel (vitest runs files
 * in several processes) would see that as a fault of its own. Every RabbitMQ test file takes
 * this lock in beforeAll and releases it in afterAll; a lock whose holder died is taken over.
 */
import { constants, watch } from "node:fs";
import { mkdir, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";

const DIR = join(tmpdir(), "fastagentic-rabbitmq-tests");
const LOCK = join(DIR, "lock");
/**
 * Enough for the longest file (the broker restart) to finish first; `FA_BROKER_LOCK_WAIT_MS` raises it
 * where several suites share one broker (developers running tests side by side).
 */
export const BROKER_LOCK_WAIT_MS = Number(process.env["FA_BROKER_LOCK_WAIT_MS"] ?? "") || 240_000;

/** Takes the lock (waiting for the current holder, if alive); resolves with its release. */
export async function lockBroker(waitMs = BROKER_LOCK_WAIT_MS): Promise<() => Promise<void>> {
  await mkdir(DIR, { recursive: true });
  const token = `${process.pid}:${Math.random().toString(36).slice(2)}`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const file = await open(LOCK, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY);
      await file.writeFile(token);
      await file.close();
      return async () => {
        if ((await readFile(LOCK, "utf8").catch(() => "")) === token) await rm(LOCK, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = await readFile(LOCK, "utf8").catch(() => "");
    const pid = Number(holder.split(":")[0]);
    if (holder !== "" && !alive(pid)) {
      await rm(LOCK, { force: true }); // its holder died without releasing it
      continue;
    }
    if (Date.now() >= deadline)
      throw new Error(`hang guard: the RabbitMQ test lock is still held by ${holder}`);
    await released(Math.min(1000, deadline - Date.now()));
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true; // being written: assume alive
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Resolves when something changes in the lock directory, or after `ms` (a re-check). */
function released(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const watcher = watch(DIR, () => done());
    const timer = setTimeout(() => done(), ms);
    function done() {
      clearTimeout(timer);
      watcher.close();
      resolve();
    }
  });
}

/** Takes the lock in beforeAll and releases it in afterAll, for a RabbitMQ test file. */
export function holdBrokerLockForFile(): void {
  let release: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    release = await lockBroker();
  }, BROKER_LOCK_WAIT_MS + 10_000);
  afterAll(async () => {
    await release?.();
  });
}
