/**
 * The dashboard in a real browser, against a coordinator on one transport: an unauthenticated
 * browser gets nothing; a signed-in one sees worker processes appear, and one disappear when it is
 * killed; counts move while tasks run, queue depths per priority level too; a failed task opens
 * with its error, attempts and worker; retried from the dead-letters view, it completes; retried
 * again while it still fails, it is dead-lettered again; a purge empties the view; an entity is
 * looked up by type and id (state value, context, version). Screenshots at each step go to
 * test-artifacts/dashboard/.
 * Every wait is on the page or a process, bounded.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  App,
  bearerToken,
  Coordinator,
  silentLogger,
  stateStoreFromUrl,
  type TaskHandler,
  TaskPriority,
  type Transport,
} from "../../../src/index.js";
import { CliProcess } from "../../chaos/harness.js";
import { Order } from "../../fixtures/dashboard/entities.js";
import { uniqueNamespace } from "../../helpers/brokers.js";
import { type Browsing, browserAvailable, openBrowser, screenshotPath } from "./browser.js";

export interface DashboardTarget {
  name: string;
  available(): Promise<boolean>;
  /** A transport in namespace `ns`. */
  transport(ns: string): Transport;
  /** The CLI's --transport URL (undefined: no worker processes; the coordinator runs its own workers). */
  url?: string;
  cleanup?(ns: string): Promise<void>;
  /** Where entity state lives, as a --state-store URL (undefined: the transport's own store). */
  stateStore?(ns: string): string;
  /** Whether the transport keeps queue depths per priority level (RabbitMQ: a total only). */
  depthPerPriority: boolean;
}

const TOKEN = "dashboard-test-token-0123456789";
const HANDLERS = resolve(import.meta.dirname, "../../fixtures/dashboard/handlers.ts");
const ENTITIES = resolve(import.meta.dirname, "../../fixtures/dashboard/entities.ts");
const WAIT = 30_000;

export function describeDashboardInBrowser(target: DashboardTarget): void {
  describe(`dashboard in Chromium: ${target.name}`, () => {
    let ok = false;
    const ns = uniqueNamespace("dash");
    let coordinator: Coordinator;
    let app: App;
    let base = "";
    let dir = "";
    const workers: CliProcess[] = [];
    let browser: Browsing | undefined;
    let page: Page;

    beforeAll(async () => {
      ok = browserAvailable() && (await target.available());
      if (!ok) return;
      dir = mkdtempSync(join(tmpdir(), "fa-dash-"));
      const remote = target.url !== undefined;
      const store = target.stateStore?.(ns);
      coordinator = new Coordinator({
        transport: target.transport(ns),
        ...(store ? { entities: { stateStore: stateStoreFromUrl(store) } } : {}),
        logger: silentLogger,
        config: {
          minWorkers: remote ? 0 : 2,
          maxWorkers: 2,
          autoScale: false,
          workerTimeoutMs: 2000,
          healthCheckIntervalMs: 250,
        },
        workerConfig: { maxConcurrentTasks: 4, heartbeatIntervalMs: 300 },
      });
      if (!remote) {
        const handlers = (await import(HANDLERS)).default as Record<string, TaskHandler>;
        for (const [type, fn] of Object.entries(handlers)) coordinator.handler(type, fn);
        coordinator.register(Order);
      }
      app = new App({ appLogger: silentLogger, auth: bearerToken(TOKEN) });
      app.onStartup(() => coordinator.start());
      app.onShutdown(() => coordinator.stop({ graceful: false }));
      app.mountCoordinator(coordinator);
      app.mountDashboard(coordinator, { path: "/dashboard", entities: [Order] });
      base = await app.listen({ port: 0 });
      if (remote) for (let i = 0; i < 2; i++) workers.push(await startWorker(target.url as string, ns));
    }, 120_000);

    afterAll(async () => {
      if (!ok) return;
      await browser?.close();
      await Promise.all(workers.map((w) => w.destroy()));
      await app?.close().catch(() => {});
      await target.cleanup?.(ns);
      if (dir) rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    it("gives an unauthenticated browser nothing", { timeout: 120_000 }, async ({ skip }) => {
      if (!ok) skip();
      const anonymous = await openBrowser();
      try {
        const p = await anonymous.context.newPage();
        for (const path of [
          "/dashboard/",
          "/dashboard/events",
          "/dashboard/assets/app.js",
          "/dashboard/api/dead-letters",
          "/dashboard/api/entities/order?id=o-1",
        ]) {
          // Headless Chromium gives up on the Basic challenge (no one to ask): the 401 is all it gets.
          const answered = p.waitForResponse((r) => r.url() === `${base}${path}`, { timeout: WAIT });
          await p.goto(`${base}${path}`).catch(() => {});
          const response = await answered;
          expect(response.status(), path).toBe(401);
          const body = await response.text().catch(() => "");
          const text = `${body}${await p.content()}`;
          for (const leak of ["Workers", "Dead letters", "EventSource", "pid"])
            expect(text, path).not.toContain(leak);
        }
        await p.screenshot({ path: screenshotPath(`${target.name}-0-unauthenticated`) });
      } finally {
        await anonymous.close();
      }
    });

    it("shows workers, moving counts, a failed task, and a dead letter retried to completion", {
      timeout: 240_000,
    }, async ({ skip }) => {
      if (!ok) skip();
      browser = await openBrowser({ username: "ops", password: TOKEN });
      page = await browser.context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      expect((await page.goto(`${base}/dashboard/`))?.status()).toBe(200);
      await expect.poll(() => page.locator("#feed-state").textContent(), { timeout: WAIT }).toBe("live");
      await expect.poll(() => page.locator("#workers tbody tr").count(), { timeout: WAIT }).toBe(2);
      const pids = await page.locator("#workers tbody td:nth-child(2)").allTextContents();
      if (target.url) expect(pids.map(Number).sort()).toEqual(workers.map((w) => w.pid).sort());
      await page.screenshot({ path: screenshotPath(`${target.name}-1-workers`) });

      // Counts move while tasks run.
      const before = Number(await page.locator("#c-completed").textContent());
      const release = join(dir, "release-held");
      const tasks = [];
      for (let i = 0; i < 12; i++) tasks.push(coordinator.submitAsync("hold", { file: release }));
      for (let i = 0; i < 200; i++) tasks.push(coordinator.submitAsync("work", { ms: 5, i }));
      for (let i = 0; i < 20; i++)
        tasks.push(coordinator.submitAsync("work", { ms: 5, i }, { priority: TaskPriority.LOW }));
      const submitted = await Promise.all(tasks);
      // Held tasks take every slot (2 workers × 4): the page shows them running, the rest queued.
      await expect
        .poll(async () => Number(await page.locator("#c-running").textContent()), { timeout: WAIT })
        .toBe(8);
      await expect
        .poll(async () => Number(await page.locator("#c-queued").textContent()), { timeout: WAIT })
        .toBeGreaterThan(100);
      // The broker's depths: tasks wait on it (the first may sit in a worker's prefetch), per level
      // where it can tell (low-priority ones are taken last, so they are still there).
      // Every task of the queue waits on its shared lane (src/lane-router.ts).
      const queueRow = page.locator("#queues tbody tr", {
        has: page.locator("td", { hasText: /^w2\.default$/ }),
      });
      const cell = async (n: number) => (await queueRow.locator(`td:nth-child(${n})`).textContent()) ?? "";
      await expect.poll(async () => Number(await cell(2)), { timeout: WAIT }).toBeGreaterThan(50);
      if (target.depthPerPriority) {
        // Columns: queue, waiting, critical, high, normal, low.
        await expect
          .poll(async () => [await cell(3), Number(await cell(5)) > 50, Number(await cell(6)) > 0], {
            timeout: WAIT,
          })
          .toEqual(["0", true, true]);
      } else expect(await cell(5)).toBe("–");
      await page.screenshot({ path: screenshotPath(`${target.name}-2-running`) });
      writeFileSync(release, "go");
      await Promise.all(submitted.map((t) => coordinator.waitFor(t.id, { timeoutMs: 60_000 })));
      await expect
        .poll(async () => Number(await page.locator("#c-completed").textContent()), { timeout: WAIT })
        .toBe(before + 232);
      await expect
        .poll(async () => Number(await page.locator("#c-running").textContent()), { timeout: WAIT })
        .toBe(0);

      // A failed task opens with its error.
      const file = join(dir, "fussy-ready");
      const failing = await coordinator.submitAsync("fussy", { file });
      const first = await coordinator.waitFor(failing.id, { timeoutMs: 30_000 }).catch((e: Error) => {
        throw new Error(`first run of the failing task: ${e.message}`);
      });
      expect(first.status).toBe("failed");
      await page.selectOption("#task-status", "failed");
      const row = page.locator(`#tasks tr[data-task="${failing.id}"]`);
      await row.waitFor({ timeout: WAIT });
      await row.click();
      await expect
        .poll(() => page.locator("#detail-fields").textContent(), { timeout: WAIT })
        .toContain("is not there yet");
      const fields = (await page.locator("#detail-fields").textContent()) ?? "";
      expect(fields).toContain("attempts1 (retries allowed: 0)");
      expect(fields).toContain(`worker${first.workerId}`);
      expect(fields).toMatch(/duration\d+ ms/);
      expect(await page.locator("#detail-json").textContent()).toContain(file);
      await page.screenshot({ path: screenshotPath(`${target.name}-3-failed-task`) });
      await page.click("#detail-close");

      // Retried from the dead-letters view, it completes.
      const dead = page.locator("#dead tbody tr", { hasText: failing.id });
      await expect.poll(() => dead.count(), { timeout: WAIT }).toBe(1);
      await page.screenshot({ path: screenshotPath(`${target.name}-4-dead-letters`), fullPage: true });
      writeFileSync(file, "ready");
      await dead.locator("button[data-retry]").click();
      // The retry has been answered (the task is tracked again) before its outcome is awaited.
      await expect
        .poll(() => page.locator("#dead-message").textContent(), { timeout: WAIT })
        .toContain(failing.id);
      const result = await coordinator.waitFor(failing.id, { timeoutMs: 30_000 });
      expect(result, JSON.stringify(result)).toMatchObject({ status: "completed" });
      await page.selectOption("#task-status", "completed");
      await page
        .locator(`#tasks tr[data-task="${failing.id}"] td.status-completed`)
        .waitFor({ timeout: WAIT });
      await expect.poll(() => dead.count(), { timeout: WAIT }).toBe(0);
      await page.selectOption("#task-status", "");
      await page.screenshot({ path: screenshotPath(`${target.name}-5-retried`), fullPage: true });

      // Retried while they still fail, they are dead-lettered again (not lost); a purge empties the view.
      const never = join(dir, "never-there");
      const stubborn = await Promise.all([1, 2].map(() => coordinator.submitAsync("fussy", { file: never })));
      const stubbornRows = page.locator("#dead tbody tr", { hasText: stubborn[0]?.id as string });
      for (const t of stubborn) await coordinator.waitFor(t.id, { timeoutMs: 30_000 });
      await expect.poll(() => page.locator("#dead tbody tr").count(), { timeout: WAIT }).toBe(2);
      const failedBefore = Number(await page.locator("#c-failed").textContent());
      await page.click("#dead-retry-all");
      await expect
        .poll(() => page.locator("#dead-message").textContent(), { timeout: WAIT })
        .toContain('retry all: {"retried":2');
      for (const t of stubborn) {
        const again = await coordinator.waitFor(t.id, { timeoutMs: 30_000 });
        expect(again.status).toBe("failed");
      }
      await expect
        .poll(async () => Number(await page.locator("#c-failed").textContent()), { timeout: WAIT })
        .toBe(failedBefore + 2);
      await expect.poll(() => stubbornRows.count(), { timeout: WAIT }).toBe(1);
      await expect.poll(() => page.locator("#dead tbody tr").count(), { timeout: WAIT }).toBe(2);
      page.once("dialog", (d) => void d.accept());
      await page.click("#dead-purge");
      await expect
        .poll(() => page.locator("#dead-message").textContent(), { timeout: WAIT })
        .toContain("purge: {");
      await expect.poll(() => page.locator("#dead tbody tr").count(), { timeout: WAIT }).toBe(0);
      await expect.poll(() => page.locator("#c-dead").textContent(), { timeout: WAIT }).toBe("0");

      // A worker process killed: its row goes, and the page says why. (Last: on NATS a killed
      // worker's pending pulls can take the next messages until the broker's ack wait runs out.)
      if (target.url) {
        const killed = workers.pop() as CliProcess;
        process.kill(killed.pid, "SIGKILL");
        await expect.poll(() => page.locator("#workers tbody tr").count(), { timeout: WAIT }).toBe(1);
        await expect
          .poll(() => page.locator("#events").textContent(), { timeout: WAIT })
          .toContain("missed its heartbeats");
        await killed.destroy();
      }

      expect(errors).toEqual([]);
    });

    it("looks an entity up by type and id: its state value, context and version", {
      timeout: 120_000,
    }, async ({ skip }) => {
      if (!ok) skip();
      if (target.url) {
        const store = target.stateStore?.(ns);
        const holder = await startWorker(target.url, ns, ENTITIES, store ? ["--state-store", store] : []);
        workers.push(holder);
      }
      const order = coordinator.entity(Order, "o-42");
      await order.ask({ type: "ADD_ITEM", sku: "book", price: 12 }, { timeoutMs: 30_000 });
      await order.ask({ type: "ADD_ITEM", sku: "pen", price: 3 }, { timeoutMs: 30_000 });
      await order.ask({ type: "CHECKOUT" }, { timeoutMs: 30_000 });
      browser ??= await openBrowser({ username: "ops", password: TOKEN });
      const p = await browser.context.newPage();
      const errors: string[] = [];
      p.on("pageerror", (e) => errors.push(e.message));
      await p.goto(`${base}/dashboard/`);
      await expect.poll(() => p.locator("#feed-state").textContent(), { timeout: WAIT }).toBe("live");
      // The type is offered by name; the id is typed in.
      await expect
        .poll(
          () => p.locator("#entity-types option").evaluateAll((os) => os.map((o) => o.getAttribute("value"))),
          {
            timeout: WAIT,
          },
        )
        .toEqual(["order"]);
      await p.fill("#entity-type", "order");
      await p.fill("#entity-id", "o-42");
      await p.click("#entity-form button[type=submit]");
      const field = (name: string) => p.locator(`#entity-fields dd[data-field="${name}"]`);
      await expect.poll(() => field("state").textContent(), { timeout: WAIT }).toBe('"awaitingPayment"');
      expect(await field("version").textContent()).toBe("3");
      expect(await field("status").textContent()).toBe("active");
      expect(JSON.parse((await p.locator("#entity-context").textContent()) ?? "")).toEqual({
        items: ["book", "pen"],
        total: 15,
      });
      await p.locator("#entities").screenshot({ path: screenshotPath(`${target.name}-6-entity`) });
      // Paid: the next look-up shows the final state.
      await order.ask({ type: "PAY", amount: 15 }, { timeoutMs: 30_000 });
      await p.click("#entity-form button[type=submit]");
      await expect.poll(() => field("state").textContent(), { timeout: WAIT }).toBe('"paid"');
      expect(await field("version").textContent()).toBe("4");
      expect(await field("status").textContent()).toBe("done");
      // An id that has no state yet says so.
      await p.fill("#entity-id", "o-nobody");
      await p.click("#entity-form button[type=submit]");
      await expect
        .poll(() => p.locator("#entity-message").textContent(), { timeout: WAIT })
        .toContain('No order entity with id "o-nobody"');
      expect(await p.locator("#entity-fields").isHidden()).toBe(true);
      expect(errors).toEqual([]);
      await p.close();
    });
  });
}

async function startWorker(
  url: string,
  ns: string,
  handlers = HANDLERS,
  extra: string[] = [],
): Promise<CliProcess> {
  const p = new CliProcess([
    "worker",
    "--transport",
    url,
    "--namespace",
    ns,
    "--handlers",
    handlers,
    "--concurrency",
    "4",
    "--heartbeat-ms",
    "300",
    ...extra,
  ]);
  await p.waitForOutput(/serving/, "the worker serving");
  return p;
}
