/**
 * #16.5 on NATS: kill -9 of the test's own nats-server (own port, own store directory; never the
 * shared one) mid-run, 2,000 tasks with 8 in flight (two worker processes x 4), restarted on the
 * same store. An unclean stop loses acks (the consumer's state is written lazily), so finished
 * tasks come back: the record of finished tasks (KV `fa_done_<namespace>`) must keep their
 * handlers from running again. Asserts: none lost, one outcome each, the duplicate runs the
 * cluster counts (getStats().reruns: a second start of a task; the workers' own count, from
 * their heartbeats, is printed) equal the re-runs the handlers' ledger shows, and no handler
 * started a task after its outcome was recorded (the record's creation time against the ledger).
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import type { TaskResult } from "fastagentic";
import { expect } from "vitest";
import { portableKey } from "../../transports/state-store.js";
import type { PrivateNatsServer } from "../integration/nats/private-server.js";
import { type BrokerTarget, ChaosRun, eventually } from "./harness.js";

export async function finishedAfterUncleanRestart(
  target: BrokerTarget,
  server: PrivateNatsServer,
): Promise<void> {
  // The record is opt-in (finishedTtlMs, default 0: it costs a publish per task): on for this run.
  const run = new ChaosRun(
    target,
    "kill -9 of nats-server, finished tasks redelivered",
    `${server.url}?finishedTtlMs=3600000`,
  );
  try {
    await run.start({}, target.restartClientOptions);
    const workers = await Promise.all(
      [1, 2].map(() => run.startWorkers({ concurrency: 4, args: ["--heartbeat-ms", "500"] })),
    );
    const ids = await run.submit(2000, "work", (n) => ({ n, ms: 15 }));

    await run.ledger.until((l) => l.count("end") >= 400, "400 tasks done before the kill");
    run.ledger.read();
    const inFlight = workers.reduce((n, w) => n + run.ledger.running(w.pid).length, 0);
    await server.kill(); // SIGKILL
    await server.restart(); // same port, same store directory

    const results = await run.outcomes(ids);
    const figures = run.figures(ids, results);

    // Quiet: every message has left the work stream (acked), those whose ack the kill lost included.
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const workStreams = async () => {
        const out = { pending: 0, ackPending: 0, messages: 0 };
        for await (const info of jsm.streams.list()) {
          const name = info.config.name;
          if (!name.startsWith(`${run.namespace}_q_default_work_`) || name.includes("_dead_")) continue;
          out.messages += info.state.messages;
          for await (const c of jsm.consumers.list(name)) {
            out.pending += c.num_pending;
            out.ackPending += c.num_ack_pending;
          }
        }
        return out;
      };
      // Quiet: nothing left to deliver or awaiting its ack on the work queue's consumers (the
      // messages whose ack the kill lost were redelivered and settled).
      const left = await eventually(
        workStreams,
        (w) => w.pending === 0 && w.ackPending === 0,
        "nothing pending or unacknowledged on the work queue",
        90_000,
      );
      // A heartbeat from every worker after that: their counts are complete.
      const mark = run.workerEvents.length;
      const liveIds = new Set(run.workerEvents.filter((e) => e.kind === "heartbeat").map((e) => e.info.id));
      await run.untilWorkerEvent(() => {
        const fresh = new Set(run.workerEvents.slice(mark).map((e) => e.info.id));
        return [...liveIds].every((id) => fresh.has(id) || !isLive(run, id, mark));
      }, "a heartbeat from every worker after the work stream emptied");

      run.ledger.read();
      const starts = run.ledger.tally("start");
      const reruns = [...starts.values()].reduce((n, s) => n + Math.max(0, s - 1), 0);
      const stats = run.coordinator.getStats();
      const seen = stats.workers;

      // When each task's outcome was recorded (the KV entry's creation), against the ledger.
      const kv = await new Kvm(nc).open(`fa_done_${run.namespace}`);
      let recorded = 0;
      const afterRecorded: string[] = [];
      for (let i = 0; i < ids.length; i += 100) {
        const entries = await Promise.all(ids.slice(i, i + 100).map((id) => kv.get(`d.${portableKey(id)}`)));
        entries.forEach((e, k) => {
          if (!e || e.operation !== "PUT") return;
          recorded++;
          const id = ids[i + k] as string;
          const at = e.created.getTime();
          for (const s of run.ledger.starts(id))
            if (s.at > at) afterRecorded.push(`${id} started ${s.at - at} ms after`);
        });
      }
      console.log(
        `[chaos ${target.name}]   ${inFlight} task(s) running at the kill; handler re-runs (ledger): ${reruns} ` +
          `of ${new Set([...starts].filter(([, s]) => s > 1).map(([id]) => id)).size} task(s); duplicate runs counted: ` +
          `workers ${seen.redeliveredRuns}, coordinator ${stats.reruns} (second outcomes ignored: ${stats.duplicates}); ` +
          `redeliveries of finished tasks not run: ${seen.skippedFinished}; runs after a recorded outcome: ` +
          `${seen.ranAfterRecorded} (record: ${afterRecorded.length}); outcomes recorded: ${recorded}/${ids.length}; ` +
          `messages left in the work stream below its consumers' ack floor: ${left.messages}`,
      );
      expect(await run.assertOneOutcomeEach(ids, results)).toEqual([]);
      expect(figures.lost).toBe(0);
      expect(ids.filter((id) => (results.get(id) as TaskResult).status !== "completed")).toEqual([]);
      // Every re-run the handlers saw is counted by the cluster: the coordinator sees each run
      // start; a worker sees those its delivery count or its own memory shows, never more.
      expect(stats.reruns).toBe(reruns);
      expect(seen.redeliveredRuns).toBeLessThanOrEqual(reruns);
      expect(afterRecorded).toEqual([]);
      expect(seen.ranAfterRecorded).toBe(0);
      for (const w of workers) expect(w.exit).toBeUndefined();
    } finally {
      await nc.close();
    }
  } finally {
    await run.cleanup();
  }
}

/** Whether worker `id` heartbeated at all since event `mark` could be expected (it did not leave). */
function isLive(run: ChaosRun, id: string, mark: number): boolean {
  return !run.workerEvents.slice(mark).some((e) => e.info.id === id && e.kind === "stopped");
}
