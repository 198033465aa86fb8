/**
 * `fastagentic events publish | tail | groups` as real processes on NATS: a tail in a durable
 * group prints what publish sent, a replay from all prints what came before, a live tail prints
 * live events, bad input exits 2 with a clear message. Waits are on output, bounded.
 */
import { NatsTransport } from "fastagentic/transports/nats";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CliProcess, runCli } from "../chaos/harness.js";
import { brokerAvailable, NATS_URL, uniqueNamespace } from "../helpers/brokers.js";

const natsUrl = new URL(NATS_URL);
let ok = false;
const started: CliProcess[] = [];
const namespaces: string[] = [];

beforeAll(async () => {
  ok = await brokerAvailable("NATS", natsUrl.hostname, Number(natsUrl.port || 4222));
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.destroy()));
});

afterAll(async () => {
  for (const namespace of namespaces) {
    const t = new NatsTransport({ servers: [natsUrl.host], namespace });
    await t.connect();
    await t.eventLog().deleteStreams();
    await t.close();
  }
});

function ns(): string {
  const n = uniqueNamespace("evcli");
  namespaces.push(n);
  return n;
}

const on = (n: string) => ["--transport", NATS_URL, "--namespace", n];

function tail(n: string, args: string[]): CliProcess {
  const p = new CliProcess(["events", "tail", ...args, ...on(n)]);
  started.push(p);
  return p;
}

describe("fastagentic events", () => {
  it("publish, then tail as a group and from all, then list the groups", async ({ skip }) => {
    if (!ok) skip();
    const n = ns();
    const first = await runCli([
      "events",
      "publish",
      "order.created",
      '{"orderId":"o-1"}',
      "--key",
      "o-1",
      ...on(n),
    ]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ type: "order.created" });
    const replay = tail(n, ["order.*", "--from", "all", "--max", "1"]);
    await replay.waitForOutput(/"orderId":"o-1"/, "the replayed event");
    expect(await replay.waitExit()).toEqual({ code: 0, signal: null });
    expect(JSON.parse(replay.stdout.trim())).toMatchObject({
      type: "order.created",
      key: "o-1",
      data: { orderId: "o-1" },
    });

    const billing = tail(n, ["order.*", "--group", "billing"]);
    await billing.waitForOutput(/tailing "order\.\*" as group "billing"/, "the tail subscribed");
    const second = await runCli(["events", "publish", "order.paid", '{"orderId":"o-2"}', ...on(n)]);
    expect(second.code, second.stderr).toBe(0);
    await billing.waitForOutput(/"orderId":"o-2"/, "the live event");
    expect(billing.stdout).not.toContain('"orderId":"o-1"'); // a new group starts at the next event
    billing.signal("SIGINT");
    expect((await billing.waitExit()).code).toBe(0);

    const groups = await runCli(["events", "groups", ...on(n)]);
    expect(groups.code, groups.stderr).toBe(0);
    const listed = groups.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(listed).toEqual([expect.objectContaining({ group: "billing", pattern: "order.*", pending: 0 })]);
  }, 120_000);

  it("tails live events without a group", async ({ skip }) => {
    if (!ok) skip();
    const n = ns();
    const live = tail(n, [">", "--max", "1"]);
    await live.waitForOutput(/\(live\)/, "the live tail subscribed");
    expect((await runCli(["events", "publish", "ping", "--fast", ...on(n)])).code).toBe(0);
    await live.waitForOutput(/"type":"ping"/, "the live event");
    expect((await live.waitExit()).code).toBe(0);
  }, 60_000);

  it("exits 2 with a clear message on bad input", async ({ skip }) => {
    if (!ok) skip();
    const n = ns();
    const badType = await runCli(["events", "publish", "order.*", "{}", ...on(n)]);
    expect(badType.code).toBe(2);
    expect(badType.stderr).toMatch(/Invalid event type "order\.\*"/);
    const badJson = await runCli(["events", "publish", "order.created", "{nope", ...on(n)]);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/must be JSON/);
    const badFrom = await runCli(["events", "tail", "a", "--from", "yesterday-ish", ...on(n)]);
    expect(badFrom.code).toBe(2);
    expect(badFrom.stderr).toMatch(/--from must be all, new/);
  }, 60_000);
});
