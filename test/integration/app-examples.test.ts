/**
 * The examples run: examples/decorators.ts prints its results and exits 0; examples/http-app.ts
 * serves the seed's App on a free port (in-memory, on NATS and on RabbitMQ by URL), answers a request, and
 * exits 0 on SIGINT after draining.
 */
import { type Transport, transportFromUrl } from "fastagentic";
import type { NatsTransport } from "fastagentic/transports/nats";
import { describe, expect, it } from "vitest";
import { AMQP_URL, amqpAvailable, NATS_URL, natsAvailable, uniqueNamespace } from "../helpers/brokers.js";
import { runScript } from "../helpers/script.js";
import { deleteNamespace } from "./amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "./amqp/broker-lock.js";

/** JetStream streams outlive the example's process: remove those of its namespace. */
async function deleteNatsStreams(url: string): Promise<void> {
  const transport = transportFromUrl(url);
  await transport.connect();
  try {
    await ((transport as { adapter?: Transport }).adapter as NatsTransport).deleteStreams();
  } finally {
    await transport.close();
  }
}

describe("examples", () => {
  it("examples/decorators.ts runs a decorated actor and exits 0", async () => {
    const r = runScript("examples/decorators.ts");
    const { code } = await r.exit;
    expect(code, r.output()).toBe(0);
    const out = r.output();
    expect(out).toContain("Documents actor started");
    expect(out).toContain("process_document: { pages: 12, attempt: 1, processedSoFar: 1 }");
    expect(out).toContain("count_words: { words: 4 }");
    expect(out).toContain("defaults: timeoutMs=2000 retries=1 priority=5");
    expect(out).toContain("batch: 3, 5, 8");
    expect(out).toContain("Documents actor stopped");
    expect(out).toContain("done");
  });

  const transports: Array<[string, () => Promise<string | undefined>]> = [
    ["memory", async () => "memory://"],
    [
      "nats",
      async () =>
        (await natsAvailable()) ? `${NATS_URL}?namespace=${uniqueNamespace("httpex")}` : undefined,
    ],
    [
      "amqp",
      async () =>
        (await amqpAvailable()) ? `${AMQP_URL}?namespace=${uniqueNamespace("httpex")}` : undefined,
    ],
  ];

  it.for(transports)(
    "examples/http-app.ts serves on %s and exits 0 on SIGINT",
    { timeout: BROKER_LOCK_WAIT_MS + 300_000 },
    async ([name, url], { skip }) => {
      const transport = await url();
      if (transport === undefined) skip(); // said loudly by brokerAvailable (and a failure in CI)
      // RabbitMQ tests run one file at a time (some stop the broker); then this one cleans up after itself.
      const release = name === "amqp" ? await lockBroker() : undefined;
      try {
        await serveAndStop(transport as string);
      } finally {
        if (name === "amqp")
          await deleteNamespace(new URL(transport as string).searchParams.get("namespace") as string);
        await release?.();
      }
    },
  );
});

async function serveAndStop(transport: string): Promise<void> {
  {
    const r = runScript("examples/http-app.ts", { PORT: "0", FASTAGENTIC_TRANSPORT: transport });
    try {
      const [, base] = await r.waitFor(/listening on (http:\/\/\S+) /);
      await r.waitFor(/Try: curl -s -X POST http:\/\/\S+\/run/);
      const answer = await fetch(`${base}/run`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ question: "what is an actor?" }),
      });
      expect(answer.status).toBe(200);
      expect(await answer.json()).toEqual({ answer: "You asked: what is an actor?", model: "stub" });
      const health = await fetch(`${base}/health`);
      expect(await health.json()).toMatchObject({ status: "ok", workers: 4 });
    } finally {
      r.child.kill("SIGINT");
    }
    const { code } = await r.exit;
    if (transport.startsWith("nats:")) await deleteNatsStreams(transport);
    expect(code, r.output()).toBe(0);
    expect(r.output()).toContain("Distributed Agent stopped");
  }
}
