/**
 * The package as a new user gets it: `npm pack`, installed into an empty folder, then the seed's
 * examples (translated per API.md, in examples/seed/) run against it on the embedded transport,
 * type-checked against its declarations, and the CLI answers.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const seedDir = join(root, "examples/seed");
const examples = readdirSync(seedDir).filter((f) => f.endsWith(".ts"));
let work = "";
let app = "";

function run(cmd: string, args: string[], cwd: string, timeout = 120_000): string {
  return execFileSync(cmd, args, {
    cwd,
    encoding: "utf8",
    timeout,
    stdio: ["ignore", "pipe", "pipe"],
    // A new user's npm, not this project's: its engine-strict (.npmrc, inherited as npm_config_*
    // when the tests run under npm) would refuse the newest releases of Fastify's own dependencies
    // that an empty folder resolves (light-my-request's cookie 2 asks for Node 22; this project pins
    // the older one with an override, which a dependent's install does not see).
    env: { ...process.env, FASTAGENTIC_TRANSPORT: "", npm_config_engine_strict: "false" },
  });
}

describe("the packed package, installed into an empty folder", () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "fastagentic-pack-"));
    app = join(work, "app");
    const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", work], root)) as Array<{
      filename: string;
    }>;
    const tarball = join(work, packed[0]!.filename);
    cpSync(seedDir, app, { recursive: true });
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({ name: "new-user-app", private: true, type: "module" }),
    );
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ["node"],
        },
        include: ["*.ts"],
      }),
    );
    const tsx = JSON.parse(
      run("npm", ["pkg", "get", "devDependencies.tsx", "devDependencies.@types/node"], root),
    );
    run(
      "npm",
      [
        "install",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        tarball,
        `tsx@${tsx["devDependencies.tsx"]}`,
        `@types/node@${tsx["devDependencies.@types/node"]}`,
      ],
      app,
      240_000,
    );
  }, 300_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.each(examples)("runs the seed example %s and gets the seed's results", (file) => {
    const out = run(join(app, "node_modules/.bin/tsx"), [file], app, 60_000);
    expect(out).toMatch(/: ok\s*$/);
  });

  it("type-checks the examples against the package's declarations", () => {
    expect(() => run(join(root, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], app)).not.toThrow();
  });

  it("exposes the transports as subpath exports and every documented name", () => {
    const script =
      'const m = await import("fastagentic"); const n = await import("fastagentic/transports/nats"); ' +
      'const a = await import("fastagentic/transports/amqp"); ' +
      "console.log(JSON.stringify({ root: Object.keys(m).sort(), nats: Object.keys(n), amqp: Object.keys(a) }));";
    const names = JSON.parse(run("node", ["--input-type=module", "-e", script], app));
    for (const name of [
      "Coordinator",
      "Worker",
      "WorkerPool",
      "TaskQueue",
      "InMemoryWorkerRegistry",
      "TransportWorkerRegistry",
      "TaskPriority",
      "TaskStatus",
      "WorkerStatus",
      "InMemoryTransport",
      "FastAgenticError",
      "TaskFailedError",
      "TaskTimeoutError",
      "TaskCancelledError",
      "QueueFullError",
      "NoHandlerError",
      "ConfigError",
      "transportFromUrl",
    ]) {
      expect(names.root).toContain(name);
    }
    expect(names.nats.length).toBeGreaterThan(0);
    expect(names.amqp.length).toBeGreaterThan(0);
  });

  it("serves the dashboard page and its assets from the installed package", () => {
    const script =
      'import { App, Coordinator, silentLogger } from "fastagentic"; ' +
      "const c = new Coordinator({ logger: silentLogger }); const app = new App({ appLogger: silentLogger }); " +
      "app.onStartup(() => c.start()); app.onShutdown(() => c.stop()); app.mountDashboard(c); " +
      "const base = await app.listen({ port: 0 }); const out = {}; " +
      'for (const p of ["/dashboard/", "/dashboard/assets/app.js", "/dashboard/assets/app.css", "/dashboard/assets/uPlot.js", "/dashboard/assets/uPlot.css"]) ' +
      "{ const r = await fetch(base + p); out[p] = [r.status, (await r.text()).length]; } " +
      "await app.close(); console.log(JSON.stringify(out));";
    const served = JSON.parse(run("node", ["--input-type=module", "-e", script], app)) as Record<
      string,
      [number, number]
    >;
    for (const [path, [status, length]] of Object.entries(served)) {
      expect(status, path).toBe(200);
      expect(length, path).toBeGreaterThan(100);
    }
  });

  it("installs the fastagentic command", () => {
    const help = run(join(app, "node_modules/.bin/fastagentic"), ["--help"], app);
    expect(help).toMatch(/worker/);
    expect(help).toMatch(/submit/);
    expect(help).toMatch(/status/);
    expect(help).toMatch(/dead-letters/);
  });
});
