/**
 * The chaos suite, one per broker: the same six cases (cases.ts), with what differs between
 * brokers — how to reach it, how to restart it, whether to hold a lock — given by the caller.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { BROKER_LOCK_WAIT_MS } from "../integration/amqp/broker-lock.js";
import {
  frozenProcessRejoins,
  malformedMessages,
  poisonTask,
  sigkillMidTask,
  sigstopPastTimeout,
} from "./cases.js";
import type { BrokerTarget } from "./harness.js";

const CASE_MS = 240_000;

export interface ChaosSuite {
  target: BrokerTarget;
  /** False: skip (said loudly); throws in CI when the broker is unreachable. */
  available(): Promise<boolean>;
  /** Held for the whole file (RabbitMQ: one test file at a time). */
  lock?(): Promise<() => Promise<void>>;
  /** Run after the file, whatever happened (e.g. make sure the broker is running again). */
  restore?(): Promise<void>;
  /** The broker-restart case: its title and its body (it calls cases.brokerRestart; may skip). */
  restart: { title: string; run(skip: () => void): Promise<void> };
}

export function describeChaos(suite: ChaosSuite): void {
  const { target } = suite;
  describe(`chaos on ${target.name} (worker processes from the CLI)`, () => {
    let ok = false;
    let release: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      ok = await suite.available();
      if (ok && suite.lock) release = await suite.lock();
    }, BROKER_LOCK_WAIT_MS + 10_000);

    afterAll(async () => {
      try {
        if (ok) await suite.restore?.();
      } finally {
        await release?.();
      }
    }, 120_000);

    const cases: Array<[string, (skip: () => void) => Promise<void>]> = [
      [
        "SIGKILL of a worker process mid-task: its tasks run elsewhere, none lost",
        () => sigkillMidTask(target),
      ],
      [
        "SIGSTOP past workerTimeoutMs then SIGCONT: declared dead, tasks run elsewhere, one outcome each, it rejoins",
        () => sigstopPastTimeout(target),
      ],
      [
        "SIGSTOP 4 s of one of 4 processes (2 pools x --processes 2), then SIGCONT: declared dead, getWorkers() lists all 4 again within a few heartbeats",
        () => frozenProcessRejoins(target),
      ],
      [suite.restart.title, (skip) => suite.restart.run(skip)],
      [
        "a poison task that kills its process every time: dead-lettered at its delivery limit, no restart storm",
        () => poisonTask(target),
      ],
      ["malformed bytes on a task queue: dead-lettered, the workers go on", () => malformedMessages(target)],
    ];
    for (const [title, run] of cases) {
      it(
        title,
        async ({ skip }) => {
          if (!ok) skip();
          await run(() => skip());
        },
        CASE_MS,
      );
    }
  });
}
