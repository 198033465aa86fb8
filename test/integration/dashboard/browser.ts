/**
 * A real browser for the dashboard tests: Debian's Chromium (/usr/bin/chromium, installed by
 * .ci/run when missing) driven by playwright-core, headless, each context in a fresh user-data
 * dir. Never downloads a browser. Screenshots go to test-artifacts/dashboard/ (gitignored).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
export const ARTIFACTS = resolve(import.meta.dirname, "../../../test-artifacts/dashboard");

const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Whether the browser tests run: in CI a missing Chromium fails, elsewhere they skip loudly. */
export function browserAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  const message = `Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium)`;
  if (process.env["CI"]) throw new Error(`${message}: CI requires it (.ci/run installs it).`);
  console.warn(`\n*** SKIPPING DASHBOARD BROWSER TESTS: ${message}. ***\n`);
  return false;
}

export interface Browsing {
  context: BrowserContext;
  close(): Promise<void>;
}

/** A headless Chromium with a fresh profile (and, given, HTTP credentials it answers a 401 with). */
export async function openBrowser(credentials?: { username: string; password: string }): Promise<Browsing> {
  const dir = mkdtempSync(join(tmpdir(), "fa-chromium-"));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 1000 },
    ...(credentials ? { httpCredentials: credentials } : {}),
    timeout: 60_000,
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function screenshotPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, `${name}.png`);
}
