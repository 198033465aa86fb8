/**
 * App lifecycle over a real socket: startup hooks before listening, drain on close() (new requests
 * 503, in-flight ones finish, shutdown hooks in order), then the server closes; failing hooks.
 */
import { App, Coordinator, LifecycleHookError, StateError, silentLogger } from "fastagentic";
import { describe, expect, it } from "vitest";
import { deferred } from "../helpers/async.js";

const quiet = { appLogger: silentLogger };

describe("App lifecycle", () => {
  it("drains on close(): in-flight requests finish, new ones get 503, then hooks and server close", async () => {
    const started = deferred();
    const finish = deferred();
    const coordinator = new Coordinator({
      config: { minWorkers: 1, autoScale: false },
      logger: silentLogger,
    });
    coordinator.handler("work", async () => {
      started.resolve();
      await finish.promise;
      return "done";
    });
    const log: string[] = [];
    const app = new App({ title: "Drain", ...quiet });
    app.onStartup(async () => {
      await coordinator.start();
      log.push("startup");
    });
    app.onShutdown(async () => {
      log.push("shutdown 1");
      await coordinator.stop({ graceful: true });
    });
    app.onShutdown(() => {
      log.push("shutdown 2");
    });
    app.agentEndpoint({ path: "/run" }, () => coordinator.submit("work", {}));
    app.mountCoordinator(coordinator);
    const url = await app.listen({ port: 0 });
    expect(log).toEqual(["startup"]);

    const inFlight = fetch(`${url}/run`, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    await started.promise;
    const closed = app.close();
    expect(log).toEqual(["startup", "shutdown 1"]);

    const refused = await fetch(`${url}/health`);
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: { code: "FA_SHUTTING_DOWN" } });

    finish.resolve();
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(await answer.json()).toBe("done");
    await closed;
    expect(log).toEqual(["startup", "shutdown 1", "shutdown 2"]);
    expect(coordinator.state).toBe("stopped");
    await expect(fetch(`${url}/health`)).rejects.toThrow();
    await expect(app.close()).resolves.toBeUndefined();
  });

  it("a failing startup hook fails listen() with a LifecycleHookError and runs the shutdown hooks", async () => {
    const log: string[] = [];
    const app = new App({ title: "Broken", ...quiet });
    app.onStartup(() => log.push("first"));
    app.onStartup(function connectDatabase() {
      throw new Error("database unreachable");
    });
    app.onShutdown(() => log.push("shutdown"));
    const failure = await app.listen({ port: 0 }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LifecycleHookError);
    expect((failure as Error).message).toMatch(
      /Broken: onStartup hook #2 \(connectDatabase\) failed: database unreachable/,
    );
    expect(log).toEqual(["first", "shutdown"]);
    expect(() => app.onStartup(() => {})).toThrow(StateError);
  });

  it("a failing shutdown hook does not stop the others; close() reports it after closing the server", async () => {
    const log: string[] = [];
    const app = new App(quiet);
    app.onShutdown(() => {
      throw new Error("flush failed");
    });
    app.onShutdown(() => log.push("second"));
    const url = await app.listen({ port: 0 });
    await expect(app.close()).rejects.toThrow(/onShutdown hook #1 failed: flush failed/);
    expect(log).toEqual(["second"]);
    await expect(fetch(`${url}/`)).rejects.toThrow();
  });

  it("is set up before listen(): routes and hooks added later are a StateError", async () => {
    const app = new App(quiet);
    await app.listen({ port: 0 });
    expect(() => app.agentEndpoint({ path: "/late" }, () => 1)).toThrow(StateError);
    expect(() => app.mountCoordinator(new Coordinator())).toThrow(StateError);
    await expect(app.listen({ port: 0 })).rejects.toThrow(StateError);
    await app.close();
  });

  it("close() before listen() runs no hooks", async () => {
    let ran = false;
    const app = new App(quiet);
    app.onShutdown(() => {
      ran = true;
    });
    await app.close();
    expect(ran).toBe(false);
  });
});
