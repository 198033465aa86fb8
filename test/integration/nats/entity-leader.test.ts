/**
 * An entity partition's holder after its consumer's leader changed (transports/nats/
 * nats-partition-claim.ts): in a cluster the dead leader took the pull and the deliveries it had
 * sent but the client never got; the new leader would give those again only after the 60 s ack
 * wait. The holder starts a new epoch on the election advisory, so its unacked messages come
 * again at once. A single server has no elections: the advisory is handed to the mailbox as the
 * transport does when one arrives.
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

  it("re-delivers the unacked messages at once, through a new consumer; ignores a first election and other consumers", async ({
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
    mb.onLeaderElected(stream, before as string);
    mb.onLeaderElected(stream, "p0-999999");
    await new Promise((r) => setTimeout(r, PAST_GRACE_MS));
    expect(resets).toEqual([]);
    expect(await consumerOf(stream)).toEqual([before]);

    // A later election of its consumer: a new epoch, the two unacked messages again, in order.
    mb.onLeaderElected(stream, before as string);
    const all = await got.waitFor(4, "the unacked messages again, well before the 60 s ack wait", 10_000);
    expect(resets).toHaveLength(1);
    expect(resets[0]).toMatch(/new leader/);
    expect(all.slice(2).map((m) => dec(m.body))).toEqual(["m0", "m1"]);
    expect(all.slice(2).map((m) => m.seq)).toEqual(first.map((m) => m.seq));
    const after = await consumerOf(stream);
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(before);

    // Acks on the new epoch move it on: m2 follows.
    for (const m of all.slice(2)) m.ack();
    const rest = await got.waitFor(5, "m2 after the acks");
    expect(dec(rest[4]!.body)).toBe("m2");
  });
});
