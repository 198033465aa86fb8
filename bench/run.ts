/**
 * `npm run bench` (`--quick` for a smoke run, `--help` for the flags): the task round trip on
 * every path, the raw baselines and BullMQ in the same run, then memory per queued task, XState's
 * cost, scaling over worker processes and failover after a SIGKILL. Prints the table and the
 * targets, writes bench/results/latest.json and bench/results/throughput.svg.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseBenchConfig, pathSpec, runsSection, UsageError } from "./bench-config.js";
import { bestOf } from "./harness/best-round.js";
import { measureEntities } from "./harness/entities-bench.js";
import { measureEvents } from "./harness/events-bench.js";
import { measureFailover } from "./harness/failover.js";
import { runInGcChild } from "./harness/gc-child-runner.js";
import { measurePairedLatency } from "./harness/paired-latency.js";
import { measurePath, type RoundTripResult } from "./harness/round-trip.js";
import { measureScaling } from "./harness/scaling.js";
import { measureTypeScaling, typeScalingLines, typeScalingTargets } from "./harness/type-scaling.js";
import { killAllChildren } from "./harness/worker-children.js";
import { measureDashboardCost } from "./measures/dashboard-cost.bench.js";
import { PATHS, pathById } from "./paths/path-registry.js";
import { entitiesSvg, entityLines, entityTargets } from "./report/entities-report.js";
import { eventLines, eventsSvg, eventTargets } from "./report/events-report.js";
import { throughputSvg } from "./report/svg-chart.js";
import { type BenchResults, formatReport, targetLine } from "./report/table-report.js";
import { evaluateTargets } from "./report/targets.js";

/**
 * A path in this process (in memory) measures its throughput in well under a second, less than a
 * slow spell of this shared machine lasts: each round measures it this many times (every
 * measurement is kept in the results, the best one counts, as for the rounds).
 */
const IN_PROCESS_REPEATS = 3;

/** Broker paths whose latency is also measured interleaved with their raw baseline. */
const PAIRED = [
  ["fa-nats", "raw-jetstream"],
  ["fa-amqp", "raw-amqp"],
] as const;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function main(): Promise<void> {
  const config = parseBenchConfig(process.argv.slice(2));
  const runId = Date.now().toString(36);
  const started = Date.now();
  const results: BenchResults = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      node: process.version,
      loadAverageAtStart: loadavg()[0] ?? 0,
      codeUnderTest: relative(process.cwd(), fileURLToPath(import.meta.resolve("fastagentic"))),
    },
    config: { ...config },
    roundTrips: [],
    targets: [],
  };
  const runs = (section: Parameters<typeof runsSection>[1]) => runsSection(config, section);
  const partial = config.sections.length > 0;
  const paths = !runs("roundtrips")
    ? []
    : config.only.length === 0
      ? PATHS.filter((p) => !p.extra)
      : PATHS.filter((p) => config.only.includes(p.id));
  const perPath = new Map<string, RoundTripResult[]>(paths.map((p) => [p.id, []]));
  for (let round = 1; runs("roundtrips") && round <= config.rounds; round++) {
    for (const path of paths) {
      const earlier = perPath.get(path.id) as RoundTripResult[];
      if (earlier[0]?.status === "unavailable") continue;
      log(`round trip ${round}/${config.rounds}: ${path.label} …`);
      for (let repeat = 1; repeat <= (path.inProcess ? IN_PROCESS_REPEATS : 1); repeat++) {
        const name = `${path.id}-${round}-${repeat}`;
        const r = await measurePath(path, pathSpec(config, runId, name), config, {
          workerProcesses: 1,
          tasks: config.tasks,
          latency: true,
        });
        log(
          `  ${r.status}${r.tasksPerSec ? `: ${Math.round(r.tasksPerSec)} tasks/s, p50 ${r.p50Ms?.toFixed(2)} ms` : ""}${r.reason ? ` (${r.reason})` : ""}`,
        );
        earlier.push(r);
      }
    }
  }
  results.roundTrips = [...perPath.values()].map(bestOf);
  if (runs("paired")) {
    results.pairedLatency = [];
    for (const [id, baselineId] of PAIRED) {
      const fa = results.roundTrips.find((r) => r.id === id);
      const raw = results.roundTrips.find((r) => r.id === baselineId);
      if (fa?.status !== "ok" || raw?.status !== "ok") continue;
      log(`latency side by side: ${id} and ${baselineId}, alternating blocks …`);
      const r = await measurePairedLatency(
        pathById(id),
        pathById(baselineId),
        (name) => pathSpec(config, runId, name),
        config,
      );
      log(
        r.status === "ok"
          ? `  ok: p50 ${r.p50Ms?.toFixed(3)} ms vs ${r.baselineP50Ms?.toFixed(3)} ms`
          : `  failed: ${r.reason}`,
      );
      results.pairedLatency.push(r);
    }
  }
  if (runs("memory")) {
    log("memory per queued task …");
    results.queuedMemory = await runInGcChild("queued-memory", { tasks: config.queuedTasks });
  }
  if (runs("xstate")) {
    log("XState actor cost …");
    results.xstate = await runInGcChild("xstate-cost", { actors: config.quick ? 2000 : 10_000 });
  }
  if (runs("dashboard")) {
    log("dashboard cost: the in-memory coordinator without, with, and with a page on its dashboard …");
    results.dashboard = await measureDashboardCost({
      tasks: config.quick ? 20_000 : 100_000,
      rounds: config.quick ? 2 : 5,
      log,
    });
  }
  if (runs("scaling")) {
    results.scaling = await measureScaling(config, (name) => pathSpec(config, runId, name), log);
  }
  if (runs("types") && !config.skip.includes("scaling")) {
    results.typeScaling = await measureTypeScaling(
      {
        natsUrl: config.natsUrl,
        amqpUrl: config.amqpUrl,
        runId,
        counts: [1, 20, 100, 300],
        tags: 6,
        submits: config.quick ? 100 : 200,
      },
      log,
    );
  }
  if (runs("failover")) {
    results.failover = await measureFailover(config, (name) => pathSpec(config, runId, name), log);
  }
  if (runs("events")) {
    results.events = await measureEvents(
      {
        natsUrl: config.natsUrl,
        amqpUrl: config.amqpUrl,
        events: config.quick ? 3000 : 20_000,
        window: 500,
        latencyCalls: config.quick ? 200 : 1000,
        runId,
        only: config.events,
        rounds: config.rounds,
      },
      log,
    );
  }
  if (runs("entities")) {
    results.entities = await measureEntities({ config, spec: (name) => pathSpec(config, runId, name) }, log);
  }
  results.targets = evaluateTargets(results);
  if (results.typeScaling) results.targets.push(...typeScalingTargets(results.typeScaling));
  if (results.events) results.targets.push(...eventTargets(results.events));
  if (results.entities) results.targets.push(...entityTargets(results.entities));
  results.durationSec = (Date.now() - started) / 1000;
  results.machine.loadAverageAtEnd = loadavg()[0] ?? 0;
  if (partial) {
    // Only the sections asked for: their lines and targets.
    const lines: string[] = [];
    if (runs("roundtrips")) lines.push(formatReport(results));
    if (results.typeScaling) lines.push(typeScalingLines(results.typeScaling).join("\n"));
    if (results.events) lines.push(eventLines(results.events));
    if (results.entities) lines.push(entityLines(results.entities));
    const own = [
      ...(results.typeScaling ? typeScalingTargets(results.typeScaling) : []),
      ...(results.events ? eventTargets(results.events) : []),
      ...(results.entities ? entityTargets(results.entities) : []),
    ];
    if (own.length > 0) lines.push("", "Targets (ratios taken in this run):", ...own.map(targetLine));
    process.stdout.write(`${lines.join("\n")}\n`);
  } else {
    process.stdout.write(`${formatReport(results)}\n`);
    if (results.typeScaling) process.stdout.write(`${typeScalingLines(results.typeScaling).join("\n")}\n`);
    if (results.events) process.stdout.write(`${eventLines(results.events)}\n`);
    if (results.entities) process.stdout.write(`${entityLines(results.entities)}\n`);
  }
  mkdirSync(config.resultsDir, { recursive: true });
  const latest = join(config.resultsDir, "latest.json");
  const saved =
    partial && existsSync(latest) ? mergeSections(readLatest(latest), results, config.sections) : results;
  writeFileSync(latest, `${JSON.stringify(saved, null, 2)}\n`);
  if (runs("roundtrips")) writeFileSync(join(config.resultsDir, "throughput.svg"), throughputSvg(results));
  if (results.events)
    writeFileSync(join(config.resultsDir, "events.svg"), eventsSvg(results.events, results.date));
  if (results.entities)
    writeFileSync(join(config.resultsDir, "entities.svg"), entitiesSvg(results.entities, results.date));
  log(
    `wrote ${join(config.resultsDir, "latest.json")} and throughput.svg (${results.durationSec.toFixed(0)} s)`,
  );
}

function readLatest(file: string): BenchResults {
  return JSON.parse(readFileSync(file, "utf8")) as BenchResults;
}

/** The results kept in latest.json after a run of some sections: those sections replaced, the rest kept. */
function mergeSections(previous: BenchResults, run: BenchResults, sections: readonly string[]): BenchResults {
  const fields: Record<string, ReadonlyArray<keyof BenchResults>> = {
    roundtrips: ["roundTrips"],
    paired: ["pairedLatency"],
    memory: ["queuedMemory"],
    xstate: ["xstate"],
    dashboard: ["dashboard"],
    scaling: ["scaling"],
    types: ["typeScaling"],
    failover: ["failover"],
    events: ["events"],
    entities: ["entities"],
  };
  const merged: BenchResults = { ...previous };
  const record = merged as unknown as Record<string, unknown>;
  for (const section of sections) {
    for (const field of fields[section] ?? []) record[field] = run[field];
  }
  merged.sectionRuns = {
    ...previous.sectionRuns,
    ...Object.fromEntries(
      sections.map((s) => [s, { date: run.date, loadAverageAtStart: run.machine.loadAverageAtStart }]),
    ),
  };
  merged.targets = evaluateTargets(merged);
  if (merged.typeScaling) merged.targets.push(...typeScalingTargets(merged.typeScaling));
  if (merged.events) merged.targets.push(...eventTargets(merged.events));
  if (merged.entities) merged.targets.push(...entityTargets(merged.entities));
  return merged;
}

main()
  .catch((error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  })
  .finally(() => {
    killAllChildren();
    // Broker clients may keep sockets open after a failed close: do not wait for them.
    setTimeout(() => process.exit(), 1000).unref();
  });
