/**
 * `fastagentic dead-letters` as a real process against NATS: list (table and JSON), show, retry
 * (the task runs again under its own id and completes), delete, purge; bad usage exits 2.
 */
import { Coordinator, silentLogger, UnrecoverableError } from "fastagentic";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsTransport } from "../../transports/nats/index.js";
import { runCli } from "../chaos/harness.js";
import { brokerAvailable, NATS_URL, uniqueNamespace } from "../helpers/brokers.js";

const url = new URL(NATS_URL);
const ns = uniqueNamespace("dlcli");
let ok = false;
let coordinator: Coordinator;
let transport: NatsTransport;
const state = { healed: false };

beforeAll(async () => {
  ok = await brokerAvailable("NATS", url.hostname, Number(url.port || 4222));
  if (!ok) return;
  transport = new NatsTransport({ servers: [`${url.hostname}:${url.port || 4222}`], namespace: ns });
  coordinator = new Coordinator({
    transport,
    logger: silentLogger,
    config: { minWorkers: 1, maxWorkers: 1, autoScale: false },
  });
  coordinator.handler("flaky", async (data: { n: number }) => {
    if (!state.healed) throw new UnrecoverableError(`flaky ${data.n} broke`);
    return { n: data.n };
  });
  await coordinator.start();
}, 60_000);

afterAll(async () => {
  if (!ok) return;
  await coordinator.stop();
  await transport.connect().catch(() => {});
  const cleanup = new NatsTransport({ servers: [`${url.hostname}:${url.port || 4222}`], namespace: ns });
  await cleanup.connect();
  await cleanup.deleteStreams();
  await cleanup.close();
  await transport.close();
});

const cli = (...args: string[]) =>
  runCli(["dead-letters", ...args, "--transport", NATS_URL, "--namespace", ns, "--wait-ms", "300"]);

async function fail(n: number): Promise<string> {
  const task = await coordinator.submitAsync("flaky", { n });
  expect((await coordinator.waitFor(task.id, { timeoutMs: 20_000 })).status).toBe("failed");
  for (let i = 0; i < 500; i++) {
    const page = await coordinator.deadLetters.list();
    if (page.letters.some((l) => l.taskId === task.id)) return task.id;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("hang guard: no dead letter");
}

describe("fastagentic dead-letters (NATS)", () => {
  it("lists, shows, retries, deletes and purges", { timeout: 180_000 }, async ({ skip }) => {
    if (!ok) skip();
    const a = await fail(1);
    const b = await fail(2);
    const c = await fail(3);

    const listed = await cli("list", "--json");
    expect(listed.code, listed.stderr).toBe(0);
    const page = JSON.parse(listed.stdout) as {
      letters: Array<{ id: string; taskId: string; error: string }>;
    };
    expect(page.letters.map((l) => l.taskId)).toEqual([a, b, c]);
    expect(page.letters[0]!.error).toBe("flaky 1 broke");

    const table = await cli("list", "--type", "flaky");
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(a);
    expect(table.stdout).toContain("flaky 2 broke");

    const shown = await cli("show", page.letters[1]!.id);
    expect(JSON.parse(shown.stdout)).toMatchObject({ taskId: b, data: { n: 2 } });

    state.healed = true;
    const retried = await cli("retry", page.letters[0]!.id);
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toContain(a);
    const deleted = await cli("delete", page.letters[1]!.id);
    expect(deleted.code, deleted.stderr).toBe(0);
    const again = await cli("retry", page.letters[0]!.id);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("No dead letter");

    const purged = await cli("purge", "--yes", "--json");
    expect(JSON.parse(purged.stdout)).toEqual({ purged: 1 });
    expect((await coordinator.deadLetters.count()).total).toBe(0);
  });

  it("exits 2 on bad usage, with a message that says what to do", { timeout: 180_000 }, async ({ skip }) => {
    if (!ok) skip();
    for (const [args, says] of [
      [["nonsense"], "unknown action"],
      [["purge"], "--yes"],
      [["retry"], "--all"],
      [["show"], "id"],
      [["list", "--limit", "0"], "--limit"],
      [["list", "--type", "a b"], "task type"],
    ] as const) {
      const r = await cli(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toContain(says);
    }
    const memory = await runCli(["dead-letters", "list", "--transport", "memory://"]);
    expect(memory.code).toBe(2);
    expect(memory.stderr).toContain("needs a broker shared with other processes");
  });
});
