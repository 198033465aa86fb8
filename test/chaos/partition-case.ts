/**
 * A network partition, not a signal: worker processes run in two network namespaces (netns.ts),
 * the broker and a pure-client Coordinator on the host side. One namespace's link is cut mid-run
 * for longer than workerTimeoutMs, then restored. Its processes never stop: they finish what they
 * were running and try to report it, into a network that drops everything. Then:
 *
 * - the coordinator declares its workers dead, and what they were running runs elsewhere: on
 *   RabbitMQ once the broker closes their silent connections (AMQP heartbeats), on NATS at once
 *   for every delivery the coordinator knew they held (it releases them: well before AckWait).
 *   A delivery taken in the last moments before the cut, whose start never reached the
 *   coordinator, cannot be released: it completes in the cut-off process when the link returns
 *   (its outcome arrives first) or comes back after AckWait, whichever is first;
 * - no task is lost, each has exactly one outcome, and the cut-off workers' late results (sent
 *   once the link is back) change nothing;
 * - the cut-off workers are fenced and rejoin under new ids, and getWorkers() matches the live
 *   processes again (the time from the restore until it does is printed);
 * - the rejoined processes take work again.
 */
import type { TaskResult, WorkerInfo } from "fastagentic";
import { expect } from "vitest";
import { type BrokerTarget, ChaosRun, type CliProcess, eventually, GUARD_MS } from "./harness.js";
import type { PartitionNetwork } from "./netns.js";

const WORKER_TIMEOUT_MS = 3000;
const HEARTBEAT_MS = 500;
const PER_HOST = 2;
const CONCURRENCY = 4;

export type Load = "queued" | "free-slots";

export interface PartitionOptions {
  /** Where the coordinator (host side) reaches the broker. */
  coordinator: string;
  /** Where the worker processes in the namespaces reach it (the host side's address). */
  workers: string;
  /**
   * How soon what the cut-off workers held must start elsewhere, from the cut (a hang guard that
   * tells mechanisms apart: NATS, half of AckWait — released, not redelivered by the deadline).
   */
  movesWithinMs: number;
  /**
   * "queued" (default): a backlog of short tasks, so no worker has a pull waiting at the broker.
   * "free-slots": one long task per slot and nothing queued, so every worker, the cut-off ones
   * included, has a pull waiting for the next task when the cut comes.
   */
  load?: Load;
}

/** Polls getWorkers() (every 50 ms, bounded) until `ok`; resolves with when it first held. */
async function untilWorkers(
  run: ChaosRun,
  ok: (workers: WorkerInfo[]) => boolean,
  what: string,
  guardMs = GUARD_MS,
): Promise<number> {
  const deadline = Date.now() + guardMs;
  for (;;) {
    const workers = await run.coordinator.getWorkers();
    if (ok(workers)) return Date.now();
    if (Date.now() > deadline) {
      const seen = workers.map((w) => `${w.id}(pid ${w.pid})`).join(", ");
      throw new Error(`hang guard (${guardMs} ms): waited for ${what}; getWorkers(): ${seen}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** getWorkers() lists exactly one worker per live process, none of `gone`, and nothing else. */
function matchesReality(processes: CliProcess[], gone: ReadonlySet<string>) {
  return (workers: WorkerInfo[]): boolean => {
    const live = processes.filter((p) => p.exit === undefined).map((p) => p.pid);
    const pids = workers.map((w) => w.pid).sort();
    return JSON.stringify(pids) === JSON.stringify([...live].sort()) && workers.every((w) => !gone.has(w.id));
  };
}

const OUTCOME =
  "cut off past workerTimeoutMs, then restored: its tasks run elsewhere, none lost, late results ignored, it is fenced and rejoins";

/** The loads each broker runs the case under, with their test titles. */
export const LOADS: ReadonlyArray<readonly [Load, string]> = [
  ["queued", `a backlog of short tasks; one namespace ${OUTCOME}`],
  ["free-slots", `nothing queued, a free slot (a pull waiting) in every worker; one namespace ${OUTCOME}`],
];

export async function partitionPastTimeout(
  target: BrokerTarget,
  network: PartitionNetwork,
  options: PartitionOptions,
): Promise<void> {
  const [cutHost, otherHost] = network.hosts;
  if (cutHost === undefined || otherHost === undefined) throw new Error("the network needs two hosts");
  const run = new ChaosRun(
    target,
    `partition past workerTimeoutMs (${options.load ?? "queued"})`,
    options.coordinator,
  );
  const tag = `[chaos ${target.name}]  `;
  try {
    await run.start({ healthCheckIntervalMs: 250, workerTimeoutMs: WORKER_TIMEOUT_MS });
    const start = (host: typeof cutHost) =>
      run.startWorkers({
        concurrency: CONCURRENCY,
        url: options.workers,
        wrapper: network.exec(host),
        transportOptions: target.freezeOptions,
        args: ["--heartbeat-ms", String(HEARTBEAT_MS)],
      });
    const cut = await Promise.all(Array.from({ length: PER_HOST }, () => start(cutHost)));
    const other = await Promise.all(Array.from({ length: PER_HOST }, () => start(otherHost)));
    const all = [...cut, ...other];
    const cutPids = new Set(cut.map((p) => p.pid));
    await untilWorkers(run, matchesReality(all, new Set()), "the four worker processes in getWorkers()");
    const oldIds = new Set(
      (await run.coordinator.getWorkers()).filter((w) => cutPids.has(w.pid)).map((w) => w.id),
    );

    const slots = CONCURRENCY * all.length;
    const ids: string[] = [];
    if (options.load === "free-slots") {
      // One at a time: RabbitMQ packs the enqueues of one turn into one message (one consumer
      // takes it), where each task on its own message goes round the workers.
      for (let n = 0; n < slots - all.length; n++) {
        ids.push(...(await run.submit(1, "work", () => ({ n, ms: 2500 }))));
      }
    } else ids.push(...(await run.submit(500, "work", (n) => ({ n, ms: 90 + (n % 5) * 30 }))));
    await run.ledger.until(
      (l) =>
        options.load === "free-slots"
          ? l.count("start") >= slots - all.length && cut.every((p) => l.running(p.pid).length > 0)
          : l.count("end") >= 40 && cut.every((p) => l.running(p.pid).length > 0),
      options.load === "free-slots"
        ? "every task running, some in each process to cut"
        : "40 tasks done and both processes of the namespace to cut running some",
    );
    if (options.load === "free-slots") {
      // Nothing starts after this: cut once the coordinator has heard every start, so that what
      // the cut-off workers hold is what it can release (not lost with its "started" in the cut).
      await eventually(
        async () => new Set(run.taskEvents.filter((e) => e.kind === "started").map((e) => e.taskId)).size,
        (n) => n >= ids.length,
        `the coordinator to hear the ${ids.length} tasks start`,
      );
    }

    // Cut: the namespace's processes run on, unheard.
    await network.cut(cutHost);
    const cutAt = Date.now();
    const eventsAtCut = run.taskEvents.length;
    run.ledger.read();
    const stranded = cut.flatMap((p) => run.ledger.running(p.pid));
    for (const id of oldIds) await run.untilDead(id);
    const declaredAt = Date.now();
    // What must move: on a transport that releases, the deliveries whose start the coordinator heard.
    const releases = run.transport.deliveryRelease?.() !== undefined;
    const heard = new Set(
      run.taskEvents
        .slice(0, eventsAtCut)
        .filter((e) => e.kind === "started" && e.workerId !== undefined && oldIds.has(e.workerId))
        .map((e) => e.taskId),
    );
    const mustMove = releases ? stranded.filter((id) => heard.has(id)) : stranded;
    const unheard = stranded.filter((id) => !mustMove.includes(id));
    const movedElsewhere = (id: string) => run.ledger.starts(id).find((s) => !cutPids.has(s.pid));
    await run.ledger.until(
      (l) => mustMove.every((id) => l.starts(id).some((s) => !cutPids.has(s.pid))),
      `the ${mustMove.length} tasks the cut-off namespace held to start elsewhere`,
      Math.max(1000, options.movesWithinMs - (Date.now() - cutAt)),
    );
    const movedAt = Date.now();
    // Their outcomes from elsewhere are in before the link comes back: what the cut-off workers
    // send after the restore is late, and must change nothing.
    const before = await run.outcomes(mustMove);
    // While cut off, getWorkers() has only the reachable processes.
    const during = await run.coordinator.getWorkers();
    expect(during.filter((w) => cutPids.has(w.pid))).toEqual([]);

    // Restore: the late heartbeats and results arrive; the old workers are fenced and rejoin.
    await network.restore(cutHost);
    const restoredAt = Date.now();
    const eventsAtRestore = run.taskEvents.length;
    const matchedAt = await untilWorkers(
      run,
      (w) => matchesReality(all, oldIds)(w) && w.some((x) => cutPids.has(x.pid)),
      "getWorkers() to list each live process once, the cut-off ones under new ids",
    );
    const rejoined = (await run.coordinator.getWorkers()).filter((w) => cutPids.has(w.pid));
    const ms = (at: number | undefined) => (at === undefined ? "-" : String(at - cutAt));
    console.log(
      `${tag} partition: cut for ${((restoredAt - cutAt) / 1000).toFixed(1)} s (workerTimeoutMs ` +
        `${WORKER_TIMEOUT_MS}); declared dead ${declaredAt - cutAt} ms after the cut; ${mustMove.length} of ` +
        `its ${stranded.length} running task(s) had to move: all started elsewhere ${movedAt - cutAt} ms ` +
        `after the cut (each: ${mustMove.map((id) => ms(movedElsewhere(id)?.at)).join(", ")}); ` +
        `getWorkers() matched reality ${matchedAt - restoredAt} ms after the restore (heartbeat ${HEARTBEAT_MS} ms)`,
    );

    // The rejoined processes take work again.
    ids.push(...(await run.submit(200, "work", (n) => ({ n: 1000 + n, ms: 60 }))));
    const results = await run.outcomes(ids);
    const figures = run.figures(ids, results);
    const late = run.taskEvents
      .slice(eventsAtRestore)
      .filter((e) => e.workerId !== undefined && oldIds.has(e.workerId) && e.kind !== "started");
    const ranAfter = run.ledger.lines.filter(
      (l) => l.kind === "end" && cutPids.has(l.pid) && l.at > matchedAt,
    );
    const fate = unheard.map((id) => {
      const w = (results.get(id) as TaskResult | undefined)?.workerId;
      return w !== undefined && oldIds.has(w)
        ? "completed by the cut-off worker"
        : `moved at ${ms(movedElsewhere(id)?.at)} ms`;
    });
    console.log(
      `${tag} partition: ${unheard.length} task(s) started just before the cut, unheard by the coordinator` +
        `${fate.length > 0 ? ` (${fate.join("; ")})` : ""}; late results from the cut-off workers after the ` +
        `restore: ${late.length}; second outcomes ignored by the coordinator: ${figures.secondOutcomesIgnored}; ` +
        `tasks the rejoined processes ran to the end afterwards: ${ranAfter.length}`,
    );
    if (process.env["FA_CHAOS_LOG"])
      for (const p of cut) console.log(`${tag} cut-off process ${p.pid}:\n${p.stderr}`);

    expect(mustMove.length).toBeGreaterThan(0);
    expect(await run.assertOneOutcomeEach(ids, results)).toEqual([]);
    expect(figures.lost).toBe(0);
    expect(ids.filter((id) => (results.get(id) as TaskResult | undefined)?.status !== "completed")).toEqual(
      [],
    );
    // One outcome each, from elsewhere, the one known before the restore: late results changed nothing.
    for (const id of mustMove) {
      const early = before.get(id) as TaskResult;
      expect(early.status).toBe("completed");
      expect(oldIds.has(early.workerId ?? "")).toBe(false);
      const now = await run.coordinator.getTask(id);
      expect({ status: now?.status, workerId: now?.workerId }).toEqual({
        status: early.status,
        workerId: early.workerId,
      });
    }
    // Fenced and rejoined: new ids in the same processes, none of the old ones listed.
    expect(rejoined.length).toBe(PER_HOST);
    for (const w of rejoined) expect(oldIds.has(w.id)).toBe(false);
    for (const p of all) expect(p.exit).toBeUndefined();
    expect(ranAfter.length).toBeGreaterThan(0);
  } finally {
    await network.restore(cutHost).catch(() => {}); // a failed run must not leave the next one cut off
    await run.cleanup();
  }
}
