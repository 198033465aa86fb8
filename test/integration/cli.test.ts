/**
 * The `fastagentic` command line, run as real processes (`node --import tsx src/cli/main.ts …`)
 * against NATS: worker / submit / status, clear errors with exit code 2, draining on SIGTERM and
 * SIGINT, and `--processes N` supervision. The handlers are test/chaos/ledger-handlers.ts (its
 * ledger tells when a task started). Every wait is on output, a ledger line or a process exit,
 * bounded by a hang guard.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { Coordinator, silentLogger, transportFromUrl } from "fastagentic";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { queuesServedBy } from "../../src/names.js";
import {
  alive,
  CliProcess,
  GUARD_MS,
  HANDLER_TYPES,
  LEDGER_HANDLERS,
  Ledger,
  runCli,
} from "../chaos/harness.js";
import { brokerAvailable, NATS_URL, uniqueNamespace } from "../helpers/brokers.js";

const natsUrl = new URL(NATS_URL);
const TEST_MS = 120_000;

let dir = "";
let ok = false;
/** Processes and namespaces of the current test, ended and deleted after it. */
const started: CliProcess[] = [];
const namespaces = new Set<string>();
const ledgers: Ledger[] = [];

beforeAll(async () => {
  ok = await brokerAvailable("NATS", natsUrl.hostname, Number(natsUrl.port || 4222));
  dir = await mkdtemp(join(tmpdir(), "fa-cli-"));
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.destroy()));
  for (const l of ledgers.splice(0)) l.close();
  for (const ns of namespaces) {
    // Touch every queue the tests use, then delete the streams with the transport.
    const t = transportFromUrl(NATS_URL, { namespace: ns, streamsOnClose: "delete" });
    try {
      await t.connect();
      for (const lane of queuesServedBy("default", HANDLER_TYPES, [])) {
        await t.depth(lane);
        await t.depth(`dead.${lane}`);
      }
    } finally {
      await t.close();
    }
  }
  namespaces.clear();
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function namespace(): string {
  const ns = uniqueNamespace("cli");
  namespaces.add(ns);
  return ns;
}

function ledger(name: string): Ledger {
  const l = new Ledger(join(dir, `${name}-${Date.now()}.ledger`));
  ledgers.push(l);
  return l;
}

/** `fastagentic worker …` on NATS with the ledger handlers; resolves once it serves. */
async function worker(
  ns: string,
  extra: string[] = [],
  ledgerFile?: Ledger,
  serving = 1,
): Promise<CliProcess> {
  const p = new CliProcess(
    ["worker", "--transport", NATS_URL, "--namespace", ns, "--handlers", LEDGER_HANDLERS, ...extra],
    ledgerFile ? { CHAOS_LEDGER: ledgerFile.path } : {},
  );
  started.push(p);
  await p.waitForOutput(/serving/, "the worker serving", serving);
  return p;
}

/** `fastagentic submit …` run in the background (for --wait while something else happens). */
function submitting(ns: string, args: string[]): CliProcess {
  const p = new CliProcess(["submit", ...args, "--transport", NATS_URL, "--namespace", ns]);
  started.push(p);
  return p;
}

/** Asks every pool of the namespace to drain and stop, as a coordinator does (drainWorkers). */
async function drainFrom(ns: string): Promise<void> {
  const coordinator = new Coordinator({
    transport: transportFromUrl(NATS_URL, { namespace: ns }),
    config: { minWorkers: 0, maxWorkers: 0 },
    logger: silentLogger,
  });
  await coordinator.start();
  try {
    await coordinator.drainWorkers();
  } finally {
    await coordinator.stop();
    await coordinator.transport.close();
  }
}

function submit(ns: string, args: string[]) {
  return runCli(["submit", ...args, "--transport", NATS_URL, "--namespace", ns]);
}

function status(ns: string, args: string[] = []) {
  return runCli(["status", "--transport", NATS_URL, "--namespace", ns, "--wait-ms", "1500", ...args]);
}

describe("fastagentic worker / submit / status on NATS", () => {
  it(
    "submit --wait prints the result and exits 0; a failing task exits 1; without --wait it prints the id",
    async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      await worker(ns, ["--concurrency", "2"]);

      const done = await submit(ns, ["double", '{"x":21}', "--wait"]);
      expect(done.code, done.stderr).toBe(0);
      const result = JSON.parse(done.stdout);
      expect(result).toMatchObject({ status: "completed", result: { doubled: 42 } });
      expect(result.workerId).toEqual(expect.any(String));

      const failed = await submit(ns, ["explode", '{"message":"kaboom"}', "--wait"]);
      expect(failed.code).toBe(1);
      expect(JSON.parse(failed.stdout)).toMatchObject({ status: "failed", error: "kaboom" });

      const queued = await submit(ns, ["double", '{"x":1}', "--priority", "high"]);
      expect(queued.code, queued.stderr).toBe(0);
      // Its status when the broker confirmed it: "queued", unless the worker was faster than the confirm.
      expect(JSON.parse(queued.stdout)).toEqual({
        id: expect.stringMatching(/^task-/),
        status: expect.stringMatching(/^(queued|running|completed)$/),
      });
    },
    TEST_MS,
  );

  it(
    "status lists the worker with its pid and hostname, and the queue depth (table and --json)",
    async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      const runs = ledger("status");
      const w = await worker(ns, ["--concurrency", "1"], runs);
      // One slow task runs, the others wait in the queue.
      for (let i = 0; i < 4; i++) {
        const r = await submit(ns, ["slow", `{"ms":${GUARD_MS},"tag":"s${i}"}`]);
        expect(r.code, r.stderr).toBe(0);
      }
      await runs.until((l) => l.count("start") >= 1, "a slow task running");

      const table = await status(ns);
      expect(table.code, table.stderr).toBe(0);
      expect(table.stdout).toContain(`${w.pid}@${hostname()}`);
      expect(table.stdout).toMatch(/w2\.default\s+\S*\s*[23]\b/); // 3 waiting (2 if one is prefetched)
      expect(table.stdout).toMatch(/busy/);

      const json = await status(ns, ["--json"]);
      expect(json.code, json.stderr).toBe(0);
      const parsed = JSON.parse(json.stdout) as {
        workers: Array<{ pid: number; hostname: string; status: string; currentTasks: number }>;
        queues: Record<string, number>;
      };
      expect(parsed.workers).toHaveLength(1);
      expect(parsed.workers[0]).toMatchObject({
        pid: w.pid,
        hostname: hostname(),
        status: "busy",
        currentTasks: 1,
      });
      // The shared lane holds every type's tasks; the worker's profile lane holds none.
      expect(parsed.queues["w2.default"]).toBeGreaterThanOrEqual(2);
      expect(parsed.queues["w2.default"]).toBeLessThanOrEqual(3);
      const [profileLane] = Object.keys(parsed.queues).filter((q) => q.startsWith("w2.default.p"));
      expect(parsed.queues[profileLane!]).toBe(0);
    },
    TEST_MS,
  );

  it(
    "status with no worker on the namespace says so and exits 0",
    async ({ skip }) => {
      if (!ok) skip();
      const r = await status(namespace());
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("no workers heartbeating on this transport");
    },
    TEST_MS,
  );
});

describe("fastagentic: clear errors, exit code 2", () => {
  let modules: Record<string, string> = {};

  beforeAll(async () => {
    modules = {
      broken: join(dir, "broken.mjs"),
      number: join(dir, "number.mjs"),
      named: join(dir, "named.mjs"),
      empty: join(dir, "empty.mjs"),
    };
    await writeFile(modules["broken"] as string, 'throw new Error("kaput at load time");\n');
    await writeFile(modules["number"] as string, "export default 42;\n");
    await writeFile(modules["named"] as string, "export const handlers = { a: async () => 1 };\n");
    await writeFile(modules["empty"] as string, "export default {};\n");
  });

  const cases: Array<[string, () => string[], RegExp]> = [
    [
      "a bad URL",
      () => ["submit", "double", "{}", "--transport", "nats://exa_mple:port"],
      /"nats:\/\/exa_mple:port" is not a transport URL/,
    ],
    [
      "a URL that is no URL at all",
      () => ["status", "--transport", "localhost"],
      /"localhost" is not a transport URL/,
    ],
    [
      "an unsupported scheme",
      () => ["submit", "double", "{}", "--transport", "redis://127.0.0.1:6379"],
      /Unsupported transport scheme "redis:"/,
    ],
    [
      "a handlers module that does not exist",
      () => ["worker", "--transport", NATS_URL, "--handlers", "test/chaos/no-such-module.ts"],
      /no-such-module\.ts does not exist/,
    ],
    [
      "a handlers module that fails to load",
      () => ["worker", "--transport", NATS_URL, "--handlers", modules["broken"] as string],
      /failed to load: kaput at load time/,
    ],
    [
      "a handlers module whose default export handles nothing",
      () => ["worker", "--transport", NATS_URL, "--handlers", modules["number"] as string],
      /is number 42, which handles no task type/,
    ],
    [
      "a handlers module without a default export",
      () => ["worker", "--transport", NATS_URL, "--handlers", modules["named"] as string],
      /has no default export/,
    ],
    [
      "a handlers module exporting an empty object (checked before forking with --processes)",
      () => ["worker", "--transport", NATS_URL, "--handlers", modules["empty"] as string, "--processes", "2"],
      /is an empty object/,
    ],
    ["no --handlers", () => ["worker", "--transport", NATS_URL], /needs --handlers <module>/],
    [
      "bad JSON data",
      () => ["submit", "double", "{x:", "--transport", NATS_URL],
      /The task data must be JSON.*got \{x:/,
    ],
    [
      "a bad --priority",
      () => ["submit", "double", "{}", "--priority", "urgent", "--transport", NATS_URL],
      /--priority must be low, normal, high or critical.*got "urgent"/,
    ],
    [
      "bad --transport-options",
      () => ["status", "--transport", NATS_URL, "--transport-options", "{ackWait"],
      /--transport-options must be a JSON object/,
    ],
    [
      "a bad --concurrency",
      () => ["worker", "--transport", NATS_URL, "--handlers", LEDGER_HANDLERS, "--concurrency", "0"],
      /--concurrency must be an integer from 1 to 10000, got "0"/,
    ],
  ];

  for (const [what, args, message] of cases) {
    // Independent short processes: run side by side.
    it.concurrent(
      `${what}`,
      async () => {
        const r = await runCli(args());
        expect(r.code, r.stdout + r.stderr).toBe(2);
        expect(r.stderr).toMatch(/^fastagentic: /m);
        expect(r.stderr).toMatch(message);
        expect(r.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
      },
      TEST_MS,
    );
  }

  it(
    "an unreachable NATS server: a clear message and a non-zero code, without hanging",
    async () => {
      for (const args of [
        ["submit", "double", "{}", "--wait"],
        ["status"],
        ["worker", "--handlers", LEDGER_HANDLERS],
      ]) {
        const r = await runCli([...args, "--transport", "nats://127.0.0.1:1"], {}, 60_000);
        expect(r.code, r.stderr).not.toBe(0);
        expect(r.code).not.toBeNull();
        expect(r.stderr).toMatch(/fastagentic: Could not connect to NATS at nats:\/\/127\.0\.0\.1:1/);
      }
    },
    TEST_MS,
  );

  it(
    "an unreachable RabbitMQ: a clear message and a non-zero code, without hanging",
    async () => {
      const r = await runCli(
        [
          "submit",
          "double",
          "{}",
          "--transport",
          "amqp://guest:guest@127.0.0.1:1",
          "--transport-options",
          '{"connectTimeoutMs":2000}',
        ],
        {},
        60_000,
      );
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.code).not.toBeNull();
      expect(r.stderr).toMatch(
        /fastagentic: Could not connect to RabbitMQ at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1/,
      );
    },
    TEST_MS,
  );
});

describe("fastagentic worker: SIGTERM and SIGINT drain", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(
      `${signal}: the running task finishes (its result arrives), no new one starts, then exit 0`,
      async ({ skip }) => {
        if (!ok) skip();
        const ns = namespace();
        const runs = ledger(signal);
        const w = await worker(ns, ["--concurrency", "1"], runs);
        // It runs until the test says so (after the signal), however slow the machine is.
        const until = join(dir, `${ns}.done`);
        const running = submitting(ns, [
          "slow",
          JSON.stringify({ ms: GUARD_MS, tag: "running", until }),
          "--wait",
        ]);
        await runs.until((l) => l.count("start") >= 1, "the slow task started");
        // Queued behind it (the worker runs one task at a time): must not start once draining.
        const queued = await submit(ns, ["slow", '{"ms":1,"tag":"queued"}']);
        expect(queued.code, queued.stderr).toBe(0);
        const queuedId = (JSON.parse(queued.stdout) as { id: string }).id;

        w.signal(signal);
        await w.waitForOutput(/draining/, "the worker saying it drains");
        await writeFile(until, "");
        const result = await running.waitExit("the submit --wait of the running task");
        expect(result, running.output).toEqual({ code: 0, signal: null });
        expect(JSON.parse(running.stdout)).toMatchObject({
          status: "completed",
          result: { tag: "running", aborted: false, pid: w.pid },
        });
        expect(await w.waitExit()).toEqual({ code: 0, signal: null });
        runs.read();
        expect(runs.starts(queuedId)).toEqual([]);
      },
      TEST_MS,
    );
  }
});

describe("fastagentic worker --processes 2", () => {
  /** Resolves with the pids of the children serving now (the last `n` distinct "serving" lines). */
  function children(supervisor: CliProcess): number[] {
    return [...new Set(supervisor.servingPids())].filter(alive);
  }

  it(
    "replaces a child killed with SIGKILL (a new pid serves, and status lists it)",
    async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      const sup = await worker(ns, ["--processes", "2", "--max-restarts", "5"], undefined, 2);
      const [victim, other] = children(sup) as [number, number];
      expect(children(sup)).toHaveLength(2);
      process.kill(victim, "SIGKILL");
      await sup.waitForOutput(/worker process died/, "the supervisor noticing the death");
      await sup.waitForOutput(/serving/, "a replacement serving", 3);
      const now = children(sup);
      expect(now).toHaveLength(2);
      expect(now).toContain(other);
      expect(now).not.toContain(victim);
      const replacement = now.find((pid) => pid !== other) as number;
      expect(sup.stderr).toMatch(/killed by SIGKILL/);

      const s = await status(ns, ["--json"]);
      const pids = (JSON.parse(s.stdout) as { workers: Array<{ pid: number }> }).workers
        .map((x) => x.pid)
        .sort();
      expect(pids).toEqual([other, replacement].sort());

      // And it still works.
      const r = await submit(ns, ["double", '{"x":5}', "--wait"]);
      expect(JSON.parse(r.stdout)).toMatchObject({ status: "completed", result: { doubled: 10 } });
      expect(sup.exit).toBeUndefined();
    },
    TEST_MS,
  );

  it(
    "past the restart intensity (--max-restarts 1, two kills) the supervisor stops the others and exits 1",
    async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      const sup = await worker(
        ns,
        ["--processes", "2", "--max-restarts", "1", "--restart-period-ms", "60000"],
        undefined,
        2,
      );
      const [first] = children(sup) as [number, number];
      process.kill(first, "SIGKILL");
      await sup.waitForOutput(/serving/, "the first replacement serving", 3);
      const second = children(sup)[0] as number;
      process.kill(second, "SIGKILL");
      expect(await sup.waitExit()).toEqual({ code: 1, signal: null });
      expect(sup.stderr).toMatch(
        /fastagentic: worker processes keep dying \(more than 1 restarts within 60000 ms/,
      );
      // It took its remaining children down with it (they drained and exited).
      expect(sup.servingPids().filter(alive)).toEqual([]);
    },
    TEST_MS,
  );

  it(
    "children drained by a coordinator exit 0 and are not restarted (transient); then the supervisor exits 0",
    async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      const sup = await worker(ns, ["--processes", "2", "--max-restarts", "5"], undefined, 2);
      await drainFrom(ns);
      expect(await sup.waitExit()).toEqual({ code: 0, signal: null });
      expect(sup.servingPids()).toHaveLength(2); // no child was started again
      expect(sup.stderr).not.toMatch(/worker process died/);
    },
    TEST_MS,
  );

  it(
    "with --restart permanent, children drained by a coordinator are restarted",
    async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      const sup = await worker(ns, ["--processes", "2", "--restart", "permanent"], undefined, 2);
      await drainFrom(ns);
      await sup.waitForOutput(/serving/, "both children started again", 4);
      expect(sup.exit).toBeUndefined();
      expect(children(sup)).toHaveLength(2);
    },
    TEST_MS,
  );

  it("the tree escalates: stalled workers are replaced, then the pool, then the process exits 1, then the supervisor gives up", async ({
    skip,
  }) => {
    if (!ok) skip();
    const ns = namespace();
    const runs = ledger("stall");
    // Two workers per process, each stall kills both (the whole event loop stands still): more
    // than the pool's one allowed restart, so each stall makes its pool escalate.
    const sup = await worker(
      ns,
      [
        "--processes",
        "2",
        "--min-workers",
        "2",
        "--concurrency",
        "1",
        "--heartbeat-ms",
        "100",
        "--stall-timeout-ms",
        "300",
        "--max-restarts",
        "1",
        "--restart-period-ms",
        "600000",
      ],
      runs,
      2,
    );
    // A stall's result is never reported (its worker was stalled): the task comes back, stalls
    // its next worker, and so on, until the tree gives up (or it turns poison after 14 deliveries).
    await submit(ns, ["stall", '{"ms":1500}', "--retries", "10"]);
    expect(await sup.waitExit("the supervisor giving up", 150_000)).toEqual({ code: 1, signal: null });
    // Each level said what it did, from the bottom up.
    expect(sup.stderr).toMatch(/stalled past stallTimeoutMs/);
    expect(sup.stderr).toMatch(/gave up: its worker pool \S+ kept failing \(more than 1 restarts/);
    expect(sup.stderr).toMatch(/"reason":"exited with code 1","msg":"worker process died"/);
    expect(sup.stderr).toMatch(
      /fastagentic: worker processes keep dying \(more than 1 restarts within 600000 ms/,
    );
    const deliveries = runs.starts(runs.lines[0]?.taskId ?? "").length;
    console.log(`[cli] stall task delivered ${deliveries} times before the tree gave up`);
    expect(deliveries).toBeGreaterThanOrEqual(3);
    expect(sup.servingPids().filter(alive)).toEqual([]);
  }, 200_000);

  it(
    "SIGTERM to the supervisor drains the children (a running task finishes) and exits 0",
    async ({ skip }) => {
      if (!ok) skip();
      const ns = namespace();
      const runs = ledger("supervised");
      const sup = await worker(ns, ["--processes", "2", "--concurrency", "1"], runs, 2);
      const kids = children(sup);
      const running = submitting(ns, ["slow", '{"ms":2500,"tag":"supervised"}', "--wait"]);
      await runs.until((l) => l.count("start") >= 1, "the slow task started in a child");

      sup.signal("SIGTERM");
      const result = await running.waitExit("the submit --wait of the running task");
      expect(result, running.output).toEqual({ code: 0, signal: null });
      expect(JSON.parse(running.stdout)).toMatchObject({ status: "completed", result: { aborted: false } });
      expect(kids).toContain((JSON.parse(running.stdout) as { result: { pid: number } }).result.pid);
      expect(await sup.waitExit()).toEqual({ code: 0, signal: null });
      expect(sup.stderr.match(/SIGTERM: draining/g)).toHaveLength(2);
      expect(kids.filter(alive)).toEqual([]);
    },
    TEST_MS,
  );
});
