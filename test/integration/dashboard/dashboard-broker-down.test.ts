/**
 * The dashboard in Chromium while its broker is down: a nats-server of the test's own is killed
 * (SIGKILL) under an open page. The page goes on showing what the coordinator knows (its counts,
 * its workers, the charts) and says per panel what it cannot show, instead of going blank; once
 * the server is back, so is everything. Waits are on the page, bounded.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App, bearerToken, Coordinator, silentLogger } from "../../../src/index.js";
import { NatsTransport } from "../../../transports/nats/index.js";
import { uniqueNamespace } from "../../helpers/brokers.js";
import { PrivateNatsServer, privateNatsServerAvailable } from "../nats/private-server.js";
import { type Browsing, browserAvailable, openBrowser, screenshotPath } from "./browser.js";

const TOKEN = "dashboard-down-token-0123456789";
const WAIT = 30_000;

describe("dashboard in Chromium: the broker goes down and comes back", () => {
  let ok = false;
  let server: PrivateNatsServer;
  let coordinator: Coordinator;
  let app: App;
  let base = "";
  let browser: Browsing | undefined;

  beforeAll(async () => {
    ok = browserAvailable() && privateNatsServerAvailable("the dashboard broker-down test");
    if (!ok) return;
    server = await PrivateNatsServer.start();
    coordinator = new Coordinator({
      transport: new NatsTransport({
        servers: [server.url],
        namespace: uniqueNamespace("dashdown"),
        streamsOnClose: "delete",
      }),
      logger: silentLogger,
      config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
      workerConfig: { heartbeatIntervalMs: 300 },
    });
    coordinator.handler("work", async (data: { i: number }) => data.i);
    app = new App({ appLogger: silentLogger, auth: bearerToken(TOKEN) });
    app.onStartup(() => coordinator.start());
    app.onShutdown(() => coordinator.stop({ graceful: false }));
    app.mountDashboard(coordinator, { path: "/dashboard", intervalMs: 250 });
    base = await app.listen({ port: 0 });
  }, 120_000);

  afterAll(async () => {
    if (!ok) return;
    await browser?.close();
    await app?.close().catch(() => {});
    await server?.destroy();
  }, 60_000);

  const text = async (page: Page, selector: string) => (await page.locator(selector).textContent()) ?? "";

  it("shows what it can while the broker is down, and everything once it is back", {
    timeout: 180_000,
  }, async ({ skip }) => {
    if (!ok) skip();
    browser = await openBrowser({ username: "ops", password: TOKEN });
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${base}/dashboard/`);
    await expect.poll(() => text(page, "#feed-state"), { timeout: WAIT }).toBe("live");
    await Promise.all(Array.from({ length: 25 }, (_, i) => coordinator.submit("work", { i })));
    await expect.poll(() => text(page, "#c-completed"), { timeout: WAIT }).toBe("25");
    await expect.poll(() => text(page, "#transport-state"), { timeout: WAIT }).toBe("broker connected");
    // The queue's shared lane (and the worker's profile lane: src/lane-router.ts).
    const sharedLane = page.locator("#queues tbody tr", {
      has: page.locator("td", { hasText: /^w2\.default$/ }),
    });
    await expect.poll(() => sharedLane.count(), { timeout: WAIT }).toBe(1);

    await server.kill();
    // The page stays: it names the broker's state and what it cannot sample, and keeps the rest.
    await expect.poll(() => text(page, "#transport-state"), { timeout: WAIT }).not.toBe("broker connected");
    await expect.poll(() => page.locator("#queues-problem").isVisible(), { timeout: WAIT }).toBe(true);
    expect(await text(page, "#queues-problem")).toContain("Queue depths unavailable");
    await expect.poll(() => page.locator("#dead-problem").isVisible(), { timeout: WAIT }).toBe(true);
    expect(await text(page, "#feed-state")).toBe("live");
    expect(await text(page, "#c-completed")).toBe("25");
    expect(await page.locator("#workers tbody tr").count()).toBe(1);
    expect(await page.locator("#chart-throughput canvas").count()).toBeGreaterThan(0);
    await page.screenshot({ path: screenshotPath("nats-broker-down"), fullPage: true });

    await server.restart();
    await expect.poll(() => text(page, "#transport-state"), { timeout: 60_000 }).toBe("broker connected");
    await expect.poll(() => page.locator("#queues-problem").isVisible(), { timeout: WAIT }).toBe(false);
    await Promise.all(Array.from({ length: 5 }, (_, i) => coordinator.submit("work", { i })));
    await expect.poll(() => text(page, "#c-completed"), { timeout: WAIT }).toBe("30");
    expect(errors).toEqual([]);
  });
});
