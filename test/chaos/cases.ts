/**
 * The chaos cases, each run on NATS and on RabbitMQ (nats.chaos.test.ts, amqp.chaos.test.ts):
 * a few hundred tasks from a pure-client Coordinator in the test process to worker processes
 * started from the CLI, something breaks mid-run, and then every task must have exactly one
 * terminal state and none may be lost. Each prints its figures.
 */
import type { TaskResult, TransportStatusEvent } from "fastagentic";
import { deadLetterQueueOf, TaskPriority } from "fastagentic";
import { expect } from "vitest";
import { type BrokerTarget, ChaosRun, type CliProcess, eventually, guard } from "./harness.js";

const WORK = "w2.default"; // the shared lane of queue "default" (every type)
const POISON = "w2.default";

/** Is `results` complete, every task in `ids` completed? (A readable diff when not.) */
function notCompleted(ids: string[], results: Map<string, TaskResult | "lost">): string[] {
  return ids
    .map((id) => [id, results.get(id)] as const)
    .filter(([, r]) => r === "lost" || r?.status !== "completed")
    .map(([id, r]) => `${id}: ${r === "lost" ? "lost" : `${r?.status} ${r?.error ?? ""}`}`);
}

/** Runs `body` on a fresh ChaosRun and always cleans it up. */
async function withRun(
  target: BrokerTarget,
  label: string,
  body: (run: ChaosRun) => Promise<void>,
  options: { url?: string } = {},
): Promise<void> {
  const run = new ChaosRun(target, label, options.url);
  try {
    await body(run);
  } finally {
    await run.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------

/** 1. SIGKILL a worker process while the ledger shows it running tasks. */
export function sigkillMidTask(target: BrokerTarget): Promise<void> {
  return withRun(target, "SIGKILL mid-task", async (run) => {
    await run.start();
    const workers = await Promise.all([1, 2, 3].map(() => run.startWorkers({ concurrency: 4 })));
    // Durations spread out (60-180 ms), so a process's running tasks do not all end at once.
    const ids = await run.submit(300, "work", (n) => ({ n, ms: 60 + (n % 5) * 30 }));

    await run.ledger.until(
      (l) => l.count("end") >= 30 && workers.some((w) => l.running(w.pid).length > 0),
      "30 tasks done and a worker process running some",
    );
    const victim = workers.find((w) => run.ledger.running(w.pid).length > 0) as CliProcess;
    victim.signal("SIGKILL");
    const exit = await victim.waitExit();
    expect(exit.signal).toBe("SIGKILL");
    run.ledger.read(); // its last lines are in the file now
    const orphaned = run.ledger.running(victim.pid);

    const results = await run.outcomes(ids);
    const figures = run.figures(ids, results);
    expect(await run.assertOneOutcomeEach(ids, results)).toEqual([]);
    expect(figures.lost).toBe(0);
    expect(notCompleted(ids, results)).toEqual([]);
    // What the killed process was running ran to the end elsewhere.
    expect(orphaned.length).toBeGreaterThan(0);
    for (const id of orphaned) {
      expect(run.ledger.ends(id).some((l) => l.pid !== victim.pid)).toBe(true);
    }
  });
}

// ---------------------------------------------------------------------------------------------

/**
 * 2. SIGSTOP one worker process past workerTimeoutMs, then SIGCONT: declared dead, its tasks
 * run elsewhere meanwhile, its late results never give a task a second outcome, and it rejoins
 * under a new worker id (or exits cleanly).
 */
export function sigstopPastTimeout(target: BrokerTarget): Promise<void> {
  return withRun(target, "SIGSTOP past workerTimeoutMs, then SIGCONT", async (run) => {
    await run.start({ healthCheckIntervalMs: 500, workerTimeoutMs: 3000 });
    const workers = await Promise.all(
      [1, 2, 3].map(() =>
        run.startWorkers({
          concurrency: 4,
          transportOptions: target.freezeOptions,
          // Heartbeat often, and leave when our own heartbeat comes more than 2 s late: that is,
          // well before the coordinator (3 s) gives up on us.
          args: ["--heartbeat-ms", "500", "--stall-timeout-ms", "2000"],
        }),
      ),
    );
    const ids = await run.submit(300, "work", (n) => ({ n, ms: 90 + (n % 5) * 30 }));

    await run.ledger.until(
      (l) => l.count("end") >= 24 && workers.some((w) => l.running(w.pid).length > 0),
      "24 tasks done and a worker process running some",
    );
    const victim = workers.find((w) => run.ledger.running(w.pid).length > 0) as CliProcess;
    const before = run.workerEvents.filter((e) => e.info.pid === victim.pid).at(-1);
    expect(before).toBeDefined();
    const oldId = before?.info.id as string;
    victim.signal("SIGSTOP");

    // Frozen: declared dead by the coordinator, and what it was running starts elsewhere.
    await run.untilDead(oldId);
    run.ledger.read();
    const frozen = run.ledger.running(victim.pid);
    await run.ledger.until(
      (l) => frozen.every((id) => l.starts(id).some((s) => s.pid !== victim.pid)),
      `the ${frozen.length} tasks of the frozen process started elsewhere`,
    );
    victim.signal("SIGCONT");

    // It rejoins under a new worker id in the same process, or exits cleanly.
    const rejoined = run
      .untilWorkerEvent(
        (e) => e.kind === "heartbeat" && e.info.pid === victim.pid && e.info.id !== oldId,
        "a new worker in the resumed process",
        90_000,
      )
      .then(
        () => "rejoined" as const,
        () => "neither rejoined nor exited" as const,
      );
    const how = await Promise.race([rejoined, victim.exited]);
    if (how !== "rejoined") expect(how).toEqual({ code: 0, signal: null });

    const results = await run.outcomes(ids);
    const figures = run.figures(ids, results);
    const late = run.taskEvents.filter(
      (e) => e.workerId === oldId && frozen.includes(e.taskId) && e.kind !== "started",
    );
    console.log(
      `[chaos ${target.name}]   frozen process ${how === "rejoined" ? "rejoined as a new worker" : "exited 0"}; ` +
        `${frozen.length} task(s) were running in it; late results it published after resuming: ${late.length}`,
    );
    expect(await run.assertOneOutcomeEach(ids, results)).toEqual([]);
    expect(figures.lost).toBe(0);
    expect(notCompleted(ids, results)).toEqual([]);
    expect(frozen.length).toBeGreaterThan(0);
    // Whatever the zombie reported late, each of its tasks has one outcome, and it is the first.
    for (const id of frozen) {
      const first = run.outcomeEvents(id)[0];
      expect((results.get(id) as TaskResult).status).toBe(first?.kind);
    }
  });
}

// ---------------------------------------------------------------------------------------------

export interface BrokerRestart {
  /** Kills or stops the broker; resolves once it is down. */
  stop(): Promise<void>;
  /** Brings it back; resolves once it accepts connections. */
  start(): Promise<void>;
}

/**
 * 3. The broker restarts mid-run, under load and during submits: no task whose submit resolved
 * is lost, and the worker processes resume by themselves.
 */
export function brokerRestart(target: BrokerTarget, broker: BrokerRestart, url = target.url): Promise<void> {
  return withRun(
    target,
    "broker restart mid-run",
    async (run) => {
      await run.start({}, target.restartClientOptions);
      const states: Array<TransportStatusEvent & { at: number }> = [];
      run.transport.onStatus((e) => states.push({ ...e, at: Date.now() }));
      const workers = await Promise.all([1, 2].map(() => run.startWorkers({ concurrency: 4 })));
      // About 3 s of work for the 8 slots: still running when the broker goes (rabbitmqctl is slow to start).
      const acknowledged = await run.submit(200, "work", (n) => ({ n, ms: 120 }));

      await run.ledger.until((l) => l.count("end") >= 40, "40 tasks done before the restart");
      run.ledger.read();
      const inFlight = workers.reduce((n, w) => n + run.ledger.running(w.pid).length, 0);
      await broker.stop();
      const stoppedAt = Date.now();
      // Submitted while the broker is down: they resolve once it is back (or are refused).
      const during = Array.from({ length: 100 }, (_, i) =>
        run.coordinator.submitAsync("work", { n: 200 + i, ms: 60 }).then(
          (t) => t.id,
          (error: Error) => error,
        ),
      );
      await broker.start();
      const startedAt = Date.now();
      const settled = await guard(
        Promise.all(during),
        "the submits made during the outage to settle",
        120_000,
      );
      const refused = settled.filter((s): s is Error => s instanceof Error);
      acknowledged.push(...settled.filter((s): s is string => typeof s === "string"));
      if (refused.length > 0) {
        console.log(
          `[chaos ${target.name}]   ${refused.length} submit(s) refused during the outage: ${refused[0]?.message}`,
        );
      }

      const results = await run.outcomes(acknowledged);
      const figures = run.figures(acknowledged, results);
      console.log(
        `[chaos ${target.name}]   ${inFlight} task(s) running when the broker was told to stop; ` +
          `${settled.length - refused.length} submitted during the outage and confirmed after it`,
      );
      // A task with no outcome that did run (ledger) lost its outcome event, not its run.
      const noOutcome = acknowledged.filter((id) => results.get(id) === "lost");
      if (noOutcome.length > 0) {
        // The evidence: when each ran to its end, against when the coordinator's connection was back.
        const t = (ms: number) => `${((ms - stoppedAt) / 1000).toFixed(2)} s`;
        const ends = noOutcome.flatMap((id) => run.ledger.ends(id));
        const ran = new Set(ends.map((l) => l.taskId)).size;
        const coordinatorBack = states.find((s) => s.state === "connected" && s.at > stoppedAt)?.at;
        console.log(
          `[chaos ${target.name}]   ${noOutcome.length} task(s) without an outcome: ${ran} of them ran to the end ` +
            `(ledger), ${noOutcome.length - ran} never did. Times from the broker stop: broker back at ` +
            `${t(startedAt)}, coordinator reconnected at ${coordinatorBack ? t(coordinatorBack) : "never"}; ` +
            `those tasks ended at ${ends.map((l) => `${t(l.at)} (pid ${l.pid})`).join(", ")}`,
        );
      }
      expect(await run.assertOneOutcomeEach(acknowledged, results)).toEqual([]);
      expect(figures.lost).toBe(0);
      expect(notCompleted(acknowledged, results)).toEqual([]);
      expect(refused).toEqual([]);
      // The workers resumed by themselves: tasks ended in each of them after the restart.
      for (const w of workers) expect(w.exit).toBeUndefined();
      expect(states.some((s) => s.state === "reconnecting")).toBe(true);
    },
    { url },
  );
}

// ---------------------------------------------------------------------------------------------

/**
 * 4. A poison task kills its worker process on every delivery, under `--processes 2`: it ends
 * failed and dead-lettered after its delivery limit (retries + 1 + maxRedeliveries = 4), the
 * other tasks complete, and the supervisor restarts processes no more often than that.
 */
export function poisonTask(target: BrokerTarget): Promise<void> {
  const deliveryLimit = 0 + 1 + 3; // retries 0, DEFAULT maxRedeliveries 3
  return withRun(target, "poison task under --processes 2", async (run) => {
    await run.start();
    // One task at a time per process, so the poison takes no innocent task down with it.
    const supervisor = await run.startWorkers({
      processes: 2,
      concurrency: 1,
      args: ["--max-restarts", "10", "--restart-period-ms", "120000"],
    });
    const first = await run.submit(60, "work", (n) => ({ n, ms: 30 }));
    const [poison] = await run.submit(1, "poison", () => ({}));
    const second = await run.submit(60, "work", (n) => ({ n: 60 + n, ms: 30 }));
    const ids = [...first, ...second];
    const poisonId = poison as string;

    const results = await run.outcomes([...ids, poisonId]);
    const figures = run.figures([...ids, poisonId], results);
    const poisonResult = results.get(poisonId);
    expect(poisonResult).not.toBe("lost");
    expect((poisonResult as TaskResult).status).toBe("failed");
    expect((poisonResult as TaskResult).error).toMatch(/poison/);
    expect(await run.assertOneOutcomeEach([...ids, poisonId], results)).toEqual([]);
    expect(figures.lost).toBe(0);
    expect(notCompleted(ids, results)).toEqual([]);
    await eventually(
      () => run.depth(deadLetterQueueOf(POISON)),
      (n) => n >= 1,
      "the poison task in the dead-letter queue",
    );

    // No restart storm: one process death per delivery that reached the handler, at most.
    const deaths = run.ledger.starts(poisonId).length;
    const children = new Set(supervisor.servingPids()).size;
    const died = supervisor.stderr.match(/worker process died/g)?.length ?? 0;
    console.log(
      `[chaos ${target.name}]   poison: ${deaths} deliveries reached its handler (limit ${deliveryLimit}); ` +
        `${children} worker processes started in all (2 + ${children - 2} restarts); supervisor saw ${died} deaths`,
    );
    expect(deaths).toBeGreaterThanOrEqual(1);
    expect(deaths).toBeLessThanOrEqual(deliveryLimit);
    expect(children - 2).toBeLessThanOrEqual(deliveryLimit);
    expect(died).toBeLessThanOrEqual(deliveryLimit);
    expect(supervisor.exit).toBeUndefined(); // still supervising: no escalation

    supervisor.signal("SIGTERM");
    expect(await supervisor.waitExit()).toEqual({ code: 0, signal: null });
  });
}

// ---------------------------------------------------------------------------------------------

/** 5. Malformed bytes straight onto a task queue: dead-lettered, and the workers go on. */
export function malformedMessages(target: BrokerTarget): Promise<void> {
  return withRun(target, "malformed messages on a task queue", async (run) => {
    await run.start();
    const workers = await Promise.all([1, 2].map(() => run.startWorkers({ concurrency: 4 })));
    const ids = await run.submit(100, "work", (n) => ({ n, ms: 20 }));
    const garbage = [
      new Uint8Array([0xff, 0x00, 0x13, 0x37, 0xc3]),
      new TextEncoder().encode("not json at all"),
      new TextEncoder().encode(JSON.stringify({ v: 99, id: "from-the-future" })),
      new TextEncoder().encode(JSON.stringify({ v: 1, id: "no-type-no-data" })),
    ];
    for (const body of garbage) await run.transport.enqueue(WORK, body, { priority: TaskPriority.NORMAL });
    ids.push(...(await run.submit(100, "work", (n) => ({ n: 100 + n, ms: 20 }))));

    const results = await run.outcomes(ids);
    const figures = run.figures(ids, results);
    expect(await run.assertOneOutcomeEach(ids, results)).toEqual([]);
    expect(figures.lost).toBe(0);
    expect(notCompleted(ids, results)).toEqual([]);
    const dead = await eventually(
      () => run.depth(deadLetterQueueOf(WORK)),
      (n) => n >= garbage.length,
      `the ${garbage.length} malformed messages in the dead-letter queue`,
    );
    const warned = workers.reduce(
      (n, w) => n + (w.stderr.match(/malformed task message dead-lettered/g)?.length ?? 0),
      0,
    );
    console.log(
      `[chaos ${target.name}]   malformed: ${garbage.length} published, ${dead} in ${deadLetterQueueOf(WORK)}, ` +
        `${warned} warnings from the workers`,
    );
    expect(warned).toBe(garbage.length);
    for (const w of workers) expect(w.exit).toBeUndefined(); // still running
  });
}

// ---------------------------------------------------------------------------------------------

/**
 * 6. Membership follows the processes (#16.2): two CLI pools of `--processes 2` (four worker
 * processes), a coordinator with workerTimeoutMs 2000, workers heartbeating every 500 ms and
 * their own stall timeout left at its default (30 s). One worker process is frozen (SIGSTOP) for
 * 4 s: the coordinator declares its worker dead meanwhile. After SIGCONT the coordinator's
 * decision reaches it (the fence, repeated on its late heartbeat): it leaves and rejoins under a
 * new id within a few heartbeats, long before its own stall timeout, so getWorkers() lists the
 * four live processes again; its late results never give a task a second outcome.
 */
export function frozenProcessRejoins(target: BrokerTarget): Promise<void> {
  const HEARTBEAT_MS = 500;
  // Bounded well under the workers' own stall timeout (30 s), so only the fence can pass it.
  const REJOIN_GUARD_MS = 15_000;
  return withRun(target, "SIGSTOP 4 s under --processes 2, then SIGCONT", async (run) => {
    await run.start({ healthCheckIntervalMs: 250, workerTimeoutMs: 2000 });
    const pools = await Promise.all(
      [1, 2].map(() =>
        run.startWorkers({
          processes: 2,
          concurrency: 4,
          transportOptions: target.freezeOptions,
          args: ["--heartbeat-ms", String(HEARTBEAT_MS)],
        }),
      ),
    );
    const pids = pools.flatMap((p) => p.servingPids());
    expect(new Set(pids).size).toBe(4);
    // The worker processes getWorkers() lists, each once (an array, so a failure prints it).
    const livePids = async () => [
      ...new Set((await run.coordinator.getWorkers()).filter((w) => pids.includes(w.pid)).map((w) => w.pid)),
    ];
    await eventually(livePids, (s) => s.length === 4, "getWorkers() listing the 4 worker processes");

    const ids = await run.submit(400, "work", (n) => ({ n, ms: 60 + (n % 5) * 30 }));
    await run.ledger.until(
      (l) => l.count("end") >= 24 && pids.some((pid) => l.running(pid).length > 0),
      "24 tasks done and a worker process running some",
    );
    const victim = pids.find((pid) => run.ledger.running(pid).length > 0) as number;
    const before = run.workerEvents.filter((e) => e.info.pid === victim).at(-1);
    const oldId = before?.info.id as string;
    expect(oldId).toBeDefined();
    process.kill(victim, "SIGSTOP");
    const stoppedAt = Date.now();
    try {
      await run.untilDead(oldId, 10_000);
      const declaredAfter = Date.now() - stoppedAt;
      run.ledger.read();
      const frozen = run.ledger.running(victim);
      const during = await livePids();
      // Frozen for 4 s in all (the coordinator gave up on it after about 2 s).
      await new Promise((r) => setTimeout(r, Math.max(0, 4000 - (Date.now() - stoppedAt))));
      process.kill(victim, "SIGCONT");
      const resumedAt = Date.now();

      await eventually(
        livePids,
        (s) => s.length === 4,
        `getWorkers() listing all 4 worker processes again after SIGCONT (the frozen one is ${victim})`,
        REJOIN_GUARD_MS,
      );
      const rejoinedAfter = Date.now() - resumedAt;
      const workers = (await run.coordinator.getWorkers()).filter((w) => pids.includes(w.pid));
      expect(workers.length).toBe(4);
      expect(workers.some((w) => w.id === oldId)).toBe(false); // it came back under a new id

      const results = await run.outcomes(ids);
      const figures = run.figures(ids, results);
      const late = run.taskEvents.filter(
        (e) => e.workerId === oldId && frozen.includes(e.taskId) && e.kind !== "started",
      );
      console.log(
        `[chaos ${target.name}]   declared dead ${declaredAfter} ms after SIGSTOP; while frozen getWorkers() ` +
          `listed ${during.length} of the 4 processes; listed all 4 again ${rejoinedAfter} ms after SIGCONT ` +
          `(heartbeat ${HEARTBEAT_MS} ms); ${frozen.length} task(s) were running in it; late results it ` +
          `published: ${late.length}`,
      );
      expect(during).not.toContain(victim);
      expect(await run.assertOneOutcomeEach(ids, results)).toEqual([]);
      expect(figures.lost).toBe(0);
      expect(notCompleted(ids, results)).toEqual([]);
      // Its late results were ignored: each task kept the first outcome reported, and its run's worker.
      for (const id of frozen) {
        const first = run.outcomeEvents(id)[0];
        expect((results.get(id) as TaskResult).status).toBe(first?.kind);
        expect((await run.coordinator.getTask(id))?.workerId).toBe(first?.workerId);
      }
      for (const p of pools) expect(p.exit).toBeUndefined(); // no process died or escalated
    } finally {
      try {
        process.kill(victim, "SIGCONT");
      } catch {
        // gone
      }
    }
  });
}
