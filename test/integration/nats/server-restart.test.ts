/**
 * A private nats-server (own port, own store directory) killed with SIGKILL under load and
 * restarted: no task whose enqueue resolved is lost, consumers resume by themselves, streams come
 * back when the server lost its store, and a publish with no server fails with a typed error.
 */
import { rm } from "node:fs/promises";
import { type Delivery, PublishError, type TransportState } from "fastagentic";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { NatsTransport, type NatsTransportOptions } from "../../../transports/nats/index.js";
import { Collector } from "../../helpers/async.js";
import { uniqueNamespace } from "../../helpers/brokers.js";
import { PrivateNatsServer, privateNatsServerAvailable } from "./private-server.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("NATS transport across a nats-server crash", () => {
  let installed = false;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(() => {
    installed = privateNatsServerAvailable("the NATS restart tests");
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  });

  async function server(): Promise<PrivateNatsServer> {
    const s = await PrivateNatsServer.start();
    cleanups.push(() => s.destroy());
    return s;
  }

  /** A connected transport on the private server, recording its state changes. */
  async function transport(
    s: PrivateNatsServer,
    namespace: string,
    options: NatsTransportOptions = {},
  ): Promise<{ t: NatsTransport; states: Collector<TransportState> }> {
    const t = new NatsTransport({ servers: [s.url], namespace, reconnectWaitMs: 50, ...options });
    const states = new Collector<TransportState>();
    t.onStatus((e) => states.push(e.state));
    cleanups.push(() => t.close());
    await t.connect();
    return { t, states };
  }

  /** Resolves when `states` has seen `state` for the n-th time. */
  async function reached(states: Collector<TransportState>, state: TransportState, n = 1): Promise<void> {
    const seen = () => states.items.filter((x) => x === state).length;
    while (seen() < n) await states.waitFor(states.items.length + 1, `state "${state}" #${n}`);
  }

  it("loses no acknowledged task when the server is killed with SIGKILL and restarted", async ({ skip }) => {
    if (!installed) skip();
    const s = await server();
    const namespace = uniqueNamespace("crash");
    const producer = await transport(s, namespace, { publishTimeoutMs: 500, publishAttempts: 60 });
    const worker = await transport(s, namespace);

    // "q.live" is consumed throughout (the consumer must resume by itself after the restart);
    // "q.backlog" only after it (its messages sat in the store through the crash).
    const delivered = new Set<string>();
    const progress = new Collector<string>();
    const onDelivery = (d: Delivery) => {
      const id = `${d.queue}/${dec(d.body)}`;
      if (!delivered.has(id)) {
        delivered.add(id);
        progress.push(id);
      }
      void d.ack();
    };
    await worker.t.consume(["q.live"], onDelivery, { concurrency: 8 });

    const acknowledged: string[] = [];
    const enqueue = (queue: string, n: number) =>
      producer.t
        .enqueue(queue, enc(`m${n}`), { priority: (n % 4) * 5, dedupId: `m${n}` })
        .then(() => void acknowledged.push(`${queue}/m${n}`))
        .catch(() => {});
    const batch = (from: number, count: number) =>
      Array.from({ length: count }, (_, i) => [
        enqueue("q.live", from + i),
        enqueue("q.backlog", from + i),
      ]).flat();

    await Promise.all(batch(0, 150)); // acknowledged before the crash
    expect(acknowledged).toHaveLength(300);
    const inFlight = batch(150, 150); // in flight when the server dies
    await s.kill();
    await reached(producer.states, "reconnecting");
    await reached(worker.states, "reconnecting");
    const whileDown = batch(300, 50); // sent while it is down: re-sent, same ids, after the restart
    await s.restart();
    await reached(producer.states, "connected", 2);
    await reached(worker.states, "connected", 2);
    await Promise.all([...inFlight, ...whileDown]);
    expect(acknowledged.length).toBeGreaterThanOrEqual(300 + 100);

    await worker.t.consume(["q.backlog"], onDelivery, { concurrency: 8 });
    await progress.waitFor(acknowledged.length, "every acknowledged task delivered");
    expect(acknowledged.filter((id) => !delivered.has(id))).toEqual([]);
    await worker.t.deleteStreams();
  });

  it("creates its streams and consumers again when the server comes back without its store", async ({
    skip,
  }) => {
    if (!installed) skip();
    const s = await server();
    const namespace = uniqueNamespace("wipe");
    const { t, states } = await transport(s, namespace, { publishTimeoutMs: 500, publishAttempts: 20 });
    const got = new Collector<string>();
    await t.consume(
      ["q.fresh"],
      (d) => {
        got.push(dec(d.body));
        void d.ack();
      },
      { concurrency: 2 },
    );
    await t.enqueue("q.fresh", enc("before"), { priority: 5 });
    expect(await got.waitFor(1)).toEqual(["before"]);
    // A process that only enqueues (no consumer re-creating anything for it).
    const producer = await transport(s, namespace, { publishTimeoutMs: 500, publishAttempts: 20 });
    await producer.t.enqueue("q.solo", enc("one"), { priority: 5 });

    await s.kill();
    await rm(s.storeDir, { recursive: true, force: true });
    await reached(states, "reconnecting");
    await s.restart();
    await reached(states, "connected", 2);

    await t.enqueue("q.fresh", enc("after"), { priority: 20 });
    expect(await got.waitFor(2)).toEqual(["before", "after"]);
    expect(await t.depth("q.fresh")).toBe(0);
    await reached(producer.states, "connected", 2);
    await producer.t.enqueue("q.solo", enc("two"), { priority: 5 });
    expect(await producer.t.depth("q.solo")).toBe(1); // "one" went with the old store
  });

  it("fails an enqueue with PublishError when no server acknowledges it, without hanging", async ({
    skip,
  }) => {
    if (!installed) skip();
    const s = await server();
    const { t, states } = await transport(s, uniqueNamespace("gone"), {
      publishTimeoutMs: 200,
      publishAttempts: 3,
    });
    await t.enqueue("q.gone", enc("ok"), { priority: 5 });
    await s.kill();
    await reached(states, "reconnecting");
    const error = await t.enqueue("q.gone", enc("lost"), { priority: 5, dedupId: "lost-1" }).catch((e) => e);
    expect(error).toBeInstanceOf(PublishError);
    expect((error as PublishError).retryable).toBe(true);
    expect((error as Error).message).toMatch(/after 3 attempt/);
    await t.close();
    expect(t.state).toBe("closed");
  });
});
