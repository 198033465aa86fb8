/**
 * The broker itself misbehaves: its application stops and starts under load, it closes a
 * consumer's channel for exceeding its consumer timeout, it applies flow control. These tests
 * change the broker for everybody, so they hold the RabbitMQ test lock (as every RabbitMQ test
 * file does) and restore the broker whatever happens.
 */
import {
  Coordinator,
  type Delivery,
  type TaskContext,
  type Transport,
  type TransportStatusEvent,
  transportFromUrl,
  WorkerPool,
} from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/logger.js";
import type { AmqpTransport } from "../../../transports/amqp/index.js";
import { Collector } from "../../helpers/async.js";
import { AMQP_URL, uniqueNamespace } from "../../helpers/brokers.js";
import {
  amqpAvailable,
  brokerEval,
  CapturingLogger,
  deleteNamespace,
  ensureBrokerRunning,
  rabbitmqctl,
  testTransport,
} from "./amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./broker-lock.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("RabbitMQ restarts, consumer timeouts and flow control", () => {
  let ok = false;
  let release: (() => Promise<void>) | undefined;
  let watermark = "0.4";
  let consumerTimeout = "1800000";
  let tickInterval = "60000";

  beforeAll(async () => {
    ok = await amqpAvailable();
    if (!ok) return;
    release = await lockBroker();
    watermark = await brokerEval("vm_memory_monitor:get_vm_memory_high_watermark().");
    consumerTimeout = await brokerEval("application:get_env(rabbit, consumer_timeout, 1800000).");
    tickInterval = await brokerEval("application:get_env(rabbit, channel_tick_interval, 60000).");
  }, BROKER_LOCK_WAIT_MS + 10_000);

  afterAll(async () => {
    try {
      if (ok) {
        await ensureBrokerRunning();
        await restoreLimits();
      }
    } finally {
      await release?.();
    }
  }, 120_000);

  async function restoreLimits(): Promise<void> {
    await brokerEval(`vm_memory_monitor:set_vm_memory_high_watermark(${watermark}).`);
    await brokerEval(
      `application:set_env(rabbit, consumer_timeout, ${consumerTimeout}), ` +
        `application:set_env(rabbit, channel_tick_interval, ${tickInterval}).`,
    );
  }

  function watch(t: Transport) {
    const events = new Collector<TransportStatusEvent>();
    t.onStatus(events.push);
    return events;
  }

  it("loses no confirmed task across stop_app / start_app; the workers resume by themselves", async ({
    skip,
  }) => {
    if (!ok) skip();
    const namespace = uniqueNamespace("fa-restart-");
    // Two "processes": workers on one connection, the submitting client on another.
    const options = { namespace, logger: silentLogger, publishTimeoutMs: 60_000 };
    const workersTransport = transportFromUrl(AMQP_URL, options);
    const clientTransport = transportFromUrl(AMQP_URL, options);
    const workerStates = watch(workersTransport);
    const pool = new WorkerPool({
      minWorkers: 2,
      maxWorkers: 2,
      config: { maxConcurrentTasks: 8 },
      transport: workersTransport,
      logger: silentLogger,
    });
    const client = new Coordinator({
      config: { minWorkers: 0, autoScale: false },
      transport: clientTransport,
      logger: silentLogger,
    });
    const handled = new Set<number>();
    const progress = new Collector<number>();
    pool.registerHandler("count", async (data: { n: number }) => {
      if (!handled.has(data.n)) {
        handled.add(data.n);
        progress.push(data.n);
      }
      return data.n;
    });
    const total = 3000;
    const confirmed = new Set<number>();
    const refused: unknown[] = [];
    // The second half is submitted once the broker is down (however fast the first half went), so
    // the outage always hits the producer and the workers mid-run.
    let brokerDown: () => void = () => {};
    const outage = new Promise<void>((resolve) => {
      brokerDown = resolve;
    });
    try {
      await pool.start();
      await client.start();
      // The producer stays at most `lead` tasks ahead of the workers, so the outage hits both.
      const lead = 300;
      const producing = (async () => {
        for (let from = 0; from < total; from += 50) {
          if (from === total / 2) await outage;
          if (confirmed.size - handled.size > lead) {
            await progress.waitFor(confirmed.size - lead, "the workers catching up", 30_000);
          }
          const batch = Array.from({ length: 50 }, (_, i) => from + i);
          await Promise.all(
            batch.map((n) =>
              client.submitAsync("count", { n }, { retries: 5 }).then(
                () => confirmed.add(n),
                (error: unknown) => refused.push(error),
              ),
            ),
          );
        }
      })();

      await progress.waitFor(total / 4, "a quarter of the tasks handled before the restart", 30_000);
      await rabbitmqctl("stop_app");
      const handledAtStop = handled.size;
      const confirmedAtStop = confirmed.size;
      brokerDown();
      await rabbitmqctl("start_app");
      await producing;
      // The outage hit in the middle of the run: tasks were still to be submitted and handled.
      expect(confirmedAtStop).toBeLessThan(total);
      expect(handledAtStop).toBeLessThan(total);
      expect(refused).toEqual([]); // the outage was shorter than publishTimeoutMs: every submit waited

      // Every confirmed task is handled, by workers that reconnected by themselves.
      let seen = progress.items.length;
      while (![...confirmed].every((n) => handled.has(n))) {
        await progress.waitFor(seen + 1, `the remaining of ${confirmed.size} confirmed tasks`, 30_000);
        seen = progress.items.length;
      }
      expect(confirmed.size).toBe(total);
      expect(workerStates.items.map((e) => e.state)).toContain("reconnecting");
      expect(workersTransport.state).toBe("connected");
    } finally {
      await ensureBrokerRunning(); // first: stopping workers publishes their last events
      await pool.stop({ graceful: false }).catch(() => {});
      await client.stop({ graceful: false }).catch(() => {});
      await workersTransport.close();
      await clientTransport.close();
      await deleteNamespace(namespace);
    }
  }, 90_000);

  it("recovers when the broker closes a consumer's channel for its consumer timeout", async ({ skip }) => {
    if (!ok) skip();
    const logger = new CapturingLogger();
    let t: AmqpTransport | undefined;
    try {
      // Channels opened from now on time out after 1 s, checked every 250 ms.
      await brokerEval(
        "application:set_env(rabbit, consumer_timeout, 1000), application:set_env(rabbit, channel_tick_interval, 250).",
      );
      t = testTransport({ consumerTimeoutMs: 1000, logger });
      await t.connect();
      const states = watch(t);
      const got = new Collector<Delivery>();
      await t.consume(["slow"], got.push, { concurrency: 1 });
      await t.enqueue("slow", enc("long task"), { priority: 5 });
      const [first] = await got.waitFor(1);

      // Held past the timeout: the broker closes the channel (406) and puts the task back.
      const closed = await logger.waitFor("closed a consumer's channel");
      expect(String(closed.fields["err"])).toContain("timed out");
      await first!.ack(); // stale: a no-op
      const [, again] = await got.waitFor(2, "the task back on a new channel");
      expect(dec(again!.body)).toBe("long task");
      expect(again!.deliveryCount).toBe(2);
      await again!.ack();
      expect(states.items.map((e) => e.state)).not.toContain("reconnecting"); // only the channel was lost
    } finally {
      await restoreLimits();
      await t?.close();
    }
  });

  it("runs a worker's task again when the broker closes its channel mid-task", async ({ skip }) => {
    if (!ok) skip();
    const logger = new CapturingLogger();
    let transport: AmqpTransport | undefined;
    let coordinator: Coordinator | undefined;
    try {
      await brokerEval(
        "application:set_env(rabbit, consumer_timeout, 1000), application:set_env(rabbit, channel_tick_interval, 250).",
      );
      transport = testTransport({ consumerTimeoutMs: 1000, logger });
      coordinator = new Coordinator({
        config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
        workerConfig: { maxConcurrentTasks: 1 },
        transport,
        logger: silentLogger,
      });
      const attempts = new Collector<number>();
      const channelClosed = logger.waitFor("closed a consumer's channel");
      coordinator.handler("report", async (_data: unknown, ctx: TaskContext) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt === 1) await channelClosed; // still running when the broker gives up on it
        return `attempt ${ctx.attempt}`;
      });
      await coordinator.start();
      const result = await coordinator.submit("report", {}, { timeoutMs: 20_000 });
      expect(result).toBe("attempt 1"); // its outcome was published; only its ack was lost
      expect(await attempts.waitFor(2, "the task delivered again")).toEqual([1, 2]);
    } finally {
      await restoreLimits();
      await coordinator?.stop({ graceful: false });
      await transport?.close();
    }
  });

  it("turns broker flow control (connection.blocked) into backpressure, not a failure", async ({ skip }) => {
    if (!ok) skip();
    const logger = new CapturingLogger();
    const t = testTransport({ logger });
    await t.connect();
    const states = watch(t);
    let during: Promise<void> | undefined;
    try {
      await t.enqueue("flow", enc("before"), { priority: 5 });
      await brokerEval("vm_memory_monitor:set_vm_memory_high_watermark(0.0001).");
      let settled = false;
      during = t.enqueue("flow", enc("during"), { priority: 5 }).finally(() => {
        settled = true;
      });
      await logger.waitFor("flow control");
      expect(settled).toBe(false);
    } finally {
      await restoreLimits();
    }
    await during;
    expect(t.state).toBe("connected");
    expect(states.items).toEqual([]);
    const got = new Collector<string>();
    await t.consume(
      ["flow"],
      (d) => {
        got.push(dec(d.body));
        void d.ack();
      },
      { concurrency: 1 },
    );
    expect(await got.waitFor(2)).toEqual(["before", "during"]);
    await t.close();
  });
});
