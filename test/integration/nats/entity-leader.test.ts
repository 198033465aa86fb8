/**
 * An entity partition's holder after its consumer's leader changed (transports/nats/
 * nats-partition-claim.ts): in a cluster the dead leader took the pull with it. The holder opens
 * a new pull on the same consumer on the election advisory: no reset, no new consumer, the acks
 * of what it took stay valid, and new messages flow through the new pull. A single server has no
 * elections: the advisory is handed to the mailbox as the transport does when one arrives.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { MailboxMessage } from "../../../transports/entity-mailbox.js";
import { NatsEntityMailbox } from "../../../transports/nats/nats-entity-mailbox.js";
import { Collector } from "../../helpers/async.js";
import { uniqueNamespace } from "../../helpers/brokers.js";
import { deleteEntityObjects, natsAvailable, natsServer, testTransport } from "./nats-helpers.js";

const enc = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));
const dec = (b: Uint8Array) => Buffer.from(b).toString("utf8");
/** Past the claim's grace for a new consumer's first election (2 s). */
const PAST_GRACE_MS = 2300;

describe("NATS entity partition: a new consumer leader", () => {
  let ok = false;
  const cleanup: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    ok = await natsAvailable();
  });

  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function consumerOf(stream: string): Promise<string[]> {
    const nc = await connect({ servers: natsServer });
    try {
      const jsm = await jetstreamManager(nc);
      const names: string[] = [];
      for await (const info of jsm.consumers.list(stream)) if (info.name !== "timers") names.push(info.name);
      return names;
    } finally {
      await nc.close();
    }
  }

  it("pulls again from the same consumer at once, acks kept; ignores a first election and other consumers", async ({
    skip,
  }) => {
    if (!ok) skip();
    const namespace = uniqueNamespace("entld");
    const transport = testTransport({ namespace });
    await transport.connect();
    cleanup.push(async () => {
      await transport.close();
      await deleteEntityObjects(namespace);
    });
    const mailbox = transport.entityMailbox();
    expect(mailbox).toBeInstanceOf(NatsEntityMailbox);
    const mb = mailbox as NatsEntityMailbox;
    const box = "led";
    const stream = `${namespace}~ent~${box}`;
    const resets: string[] = [];
    const got = new Collector<MailboxMessage>();
    await mb.hold(box, 1, 0, (m) => got.push(m), {
      holder: "test",
      inFlight: 2,
      failoverMs: 2000,
      onReset: (reason) => resets.push(reason.message),
    });
    for (let i = 0; i < 3; i++) await mb.send(box, 1, 0, enc(`m${i}`));
    const first = await got.waitFor(2, "the first two messages");
    const [before] = await consumerOf(stream);
    expect(before).toBeDefined();

    // Its first election (right after it was made) and another consumer's: nothing happens.
    const pullsOf = () => (mb as unknown as { claims: Set<{ pulls: number }> }).claims;
    const pulls = () => [...pullsOf()].map((c) => c.pulls);
    const initial = pulls();
    mb.onLeaderElected(stream, before as string);
    mb.onLeaderElected(stream, "p0-999999");
    await new Promise((r) => setTimeout(r, PAST_GRACE_MS));
    expect(pulls()).toEqual(initial);

    // A later election of its consumer: a new pull on the same consumer, nothing reset.
    mb.onLeaderElected(stream, before as string);
    const deadline = Date.now() + 5000;
    // (one step stops the old pull's watch, one opens the new pull)
    const opened = (initial[0] as number) + 2;
    while ((pulls()[0] as number) < opened && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(pulls()[0]).toBe(opened);
    expect(resets).toEqual([]);
    expect(await consumerOf(stream)).toEqual([before]);

    // The acks of messages taken before it still count, and the rest flow through the new pull.
    for (const m of first) m.ack();
    await mb.send(box, 1, 0, enc("m3"));
    const all = await got.waitFor(4, "m2 and m3 through the new pull", 10_000);
    expect(all.map((m) => dec(m.body))).toEqual(["m0", "m1", "m2", "m3"]);
    for (const m of all.slice(2)) m.ack();
    await new Promise((r) => setTimeout(r, 300));
    expect(await mb.depth(box, 1, 0)).toBe(0);
  });
});
