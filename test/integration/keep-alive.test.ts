/**
 * Keep-alive, in real processes: a started Coordinator, Worker or WorkerPool keeps its process
 * alive until stop() (src/keep-alive.ts), like a server; once stopped, the process exits by itself.
 */
import { describe, expect, it } from "vitest";
import { runScript } from "../helpers/script.js";

const FIXTURES = "test/fixtures/keep-alive";

describe("keep-alive", () => {
  it("holds a script awaiting a task in retry back-off at its top level; it then exits 0 by itself", async () => {
    const r = runScript(`${FIXTURES}/retry-at-top-level.ts`);
    const { code } = await r.exit;
    expect(code, r.output()).toBe(0);
    expect(r.output()).toContain('result {"attempts":2}');
    expect(r.output()).toContain("stopped");
  }, 60_000);

  it("keeps a process with started components and nothing to do alive until they stop", async () => {
    const r = runScript(`${FIXTURES}/server-until-stop.ts`);
    try {
      await r.waitFor(/ready/);
      // Nothing is running or scheduled now: without a hold the event loop would empty at once.
      // Give it the chance to (several turns and a generous pause), then check it is still there.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(r.child.exitCode, r.output()).toBeNull();
      expect(r.output()).not.toContain("event loop empty");
      r.child.kill("SIGUSR2");
      const { code, signal } = await r.exit;
      expect({ code, signal }, r.output()).toEqual({ code: 0, signal: null });
      // Stopped, then the process ended on its own: nothing of the library held it any more.
      expect(r.output()).toMatch(/stopping[\s\S]*stopped[\s\S]*event loop empty/);
    } finally {
      r.child.kill("SIGKILL");
    }
  }, 60_000);

  it("does not hold the process with keepAlive: false", async () => {
    const r = runScript(`${FIXTURES}/server-until-stop.ts`, { KEEP_ALIVE: "false" });
    try {
      const { code } = await r.exit;
      expect(code, r.output()).toBe(0);
      expect(r.output()).toMatch(/ready[\s\S]*event loop empty/);
      expect(r.output()).not.toContain("stopping");
    } finally {
      r.child.kill("SIGKILL");
    }
  }, 60_000);
});
