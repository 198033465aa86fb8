/**
 * `fastagentic worker --handlers <module of entity types>` holds entities: a client in this process
 * addresses them on NATS; two worker processes split the partitions. Waits are on output and
 * answers, bounded by hang guards.
 */
import { Coordinator } from "fastagentic";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { NatsTransport } from "../../transports/nats/index.js";
import { CliProcess, runCli } from "../chaos/harness.js";
import { Ledger } from "../fixtures/entities/ledger.entities.js";
import { NATS_URL, uniqueNamespace } from "../helpers/brokers.js";
import { deleteEntityObjects, deleteNamespace, natsAvailable, natsServer } from "./nats/nats-helpers.js";

let ok = false;
const started: CliProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  ok = await natsAvailable();
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.destroy()));
  for (const c of cleanups.splice(0).reverse()) await c();
});

function namespace(): string {
  const ns = uniqueNamespace("ecli");
  cleanups.push(async () => {
    await deleteEntityObjects(ns);
    await deleteNamespace(ns);
  });
  return ns;
}

async function worker(ns: string): Promise<CliProcess> {
  const p = new CliProcess([
    "worker",
    "--transport",
    NATS_URL,
    "--namespace",
    ns,
    "--handlers",
    "test/fixtures/entities/ledger.entities.ts",
  ]);
  started.push(p);
  await p.waitForOutput(/serving entity ledger/, "the worker holding entities");
  return p;
}

async function client(ns: string): Promise<Coordinator> {
  const c = new Coordinator({
    transport: new NatsTransport({ servers: [natsServer], namespace: ns }),
    config: { minWorkers: 0, maxWorkers: 1, autoScale: false },
  });
  await c.start();
  cleanups.push(async () => {
    await c.stop();
    await c.transport.close();
  });
  return c;
}

describe("fastagentic worker with entity types", () => {
  it("holds the entities of a --handlers module; two worker processes hold them together, each id in order", async ({
    skip,
  }) => {
    if (!ok) skip();
    const ns = namespace();
    await worker(ns);
    await worker(ns);
    const c = await client(ns);
    const ids = Array.from({ length: 20 }, (_, i) => `cli-${i}`);
    for (let n = 0; n < 5; n++)
      await Promise.all(ids.map((id) => c.entity(Ledger, id).send({ type: "APPEND", n })));
    for (const id of ids) {
      expect((await c.entity(Ledger, id).ask({ type: "APPEND", n: 5 })).context.log).toEqual([
        0, 1, 2, 3, 4, 5,
      ]);
    }
  });

  it("refuses a --state-store URL it cannot use, with exit code 2", async ({ skip }) => {
    if (!ok) skip();
    const ns = namespace();
    const run = await runCli([
      "worker",
      "--transport",
      NATS_URL,
      "--namespace",
      ns,
      "--handlers",
      "test/fixtures/entities/ledger.entities.ts",
      "--state-store",
      "redis://user:secret@localhost",
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/Unsupported state store scheme "redis:"/);
    expect(run.stderr).not.toContain("secret");
  });
});
