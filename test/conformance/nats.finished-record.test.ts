import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import type { FinishedRecord } from "../../transports/finished-record.js";
import { NatsTransport } from "../../transports/nats/index.js";
import { FINISHED_MAX_BYTES, type NatsFinishedRecord } from "../../transports/nats/nats-finished-record.js";
import { brokerAvailable, NATS_URL, uniqueNamespace } from "../helpers/brokers.js";
import { describeFinishedRecordConformance } from "./finished-record-conformance.js";

const url = new URL(NATS_URL);
const server = `${url.hostname}:${url.port || 4222}`;
const available = () => brokerAvailable("NATS", url.hostname, Number(url.port || 4222));
const transports = new Map<FinishedRecord, NatsTransport>();
const opened: NatsTransport[] = [];

async function recordIn(namespace: string, finishedTtlMs = 600_000): Promise<FinishedRecord> {
  const transport = new NatsTransport({ servers: [server], namespace, finishedTtlMs });
  await transport.connect();
  opened.push(transport);
  const record = transport.finishedRecord() as FinishedRecord;
  transports.set(record, transport);
  return record;
}

afterAll(async () => {
  for (const t of opened) await t.close();
});

describeFinishedRecordConformance({
  name: "nats (JetStream KV fa_done_<namespace>)",
  available,
  create: () => recordIn(uniqueNamespace("done")),
  // Another process: its own connection to the same bucket.
  peer: (record) => recordIn(transports.get(record)?.namespace as string),
  cleanup: (record) => (record as NatsFinishedRecord).destroy(),
});

describe("the NATS record of finished tasks", () => {
  it("is a KV bucket whose entries expire after finishedTtlMs, capped in bytes, deleted with the namespace", async ({
    skip,
  }) => {
    if (!(await available())) skip();
    const namespace = uniqueNamespace("donecfg");
    const transport = new NatsTransport({
      servers: [server],
      namespace,
      finishedTtlMs: 90_000,
      streamsOnClose: "delete",
    });
    await transport.connect();
    const record = transport.finishedRecord() as NatsFinishedRecord;
    await record.recordOutcome("t1", new Uint8Array([1]));
    const probe = await connect({ servers: [server] });
    const jsm = await jetstreamManager(probe);
    try {
      const info = await jsm.streams.info(`KV_fa_done_${namespace}`);
      expect(info.config.max_age).toBe(90_000 * 1_000_000); // nanoseconds
      expect(info.config.max_bytes).toBe(FINISHED_MAX_BYTES);
      expect(info.config.max_msgs_per_subject).toBe(1);
      await transport.close();
      await expect(jsm.streams.info(`KV_fa_done_${namespace}`)).rejects.toThrow(/not found/i);
    } finally {
      await transport.close();
      await probe.close();
    }
  });

  it("noteOutcome (the workers' unanswered write) records once too: the stream refuses a second write", async ({
    skip,
  }) => {
    if (!(await available())) skip();
    const record = (await recordIn(uniqueNamespace("donenote"))) as NatsFinishedRecord;
    try {
      record.noteOutcome("t1", new TextEncoder().encode("first"));
      record.noteOutcome("t1", new TextEncoder().encode("second"));
      // Nothing answers a plain publish: read until it is stored (bounded).
      const deadline = Date.now() + 10_000;
      let known = await record.lookup("t1");
      while (known === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        known = await record.lookup("t1");
      }
      // Once the first is there, the second (sent after it on the same connection) was refused.
      await new Promise((r) => setTimeout(r, 200));
      expect(new TextDecoder().decode((await record.lookup("t1"))?.outcome ?? new Uint8Array())).toBe(
        "first",
      );
      expect(await record.recordOutcome("t1", new TextEncoder().encode("third"))).toBe(false);
    } finally {
      await record.destroy();
    }
  });

  it("is none with finishedTtlMs: 0", () => {
    const transport = new NatsTransport({
      servers: [server],
      namespace: uniqueNamespace("none"),
      finishedTtlMs: 0,
    });
    expect(transport.finishedRecord()).toBeUndefined();
  });
});
