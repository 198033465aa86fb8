/** Where entities live on a transport: its mailboxes, and the state store chosen for it. */
import { afterEach, describe, expect, it } from "vitest";
import { entityBackends, stateStoreFromUrl } from "../../../src/entities/entity-backends.js";
import { ConfigError } from "../../../src/errors.js";
import { InMemoryTransport } from "../../../transports/memory/memory.transport.js";
import { MemoryStateStore } from "../../../transports/memory/memory-state-store.js";
import type { Transport } from "../../../transports/transport.js";

const saved = process.env["FASTAGENTIC_STATE_STORE"];
afterEach(() => {
  if (saved === undefined) delete process.env["FASTAGENTIC_STATE_STORE"];
  else process.env["FASTAGENTIC_STATE_STORE"] = saved;
});

/** A transport with mailboxes and no store of its own (as RabbitMQ). */
function storeless(): Transport {
  const memory = new InMemoryTransport();
  return Object.assign(Object.create(memory) as Transport, { kind: "amqp", stateStore: undefined });
}

describe("entityBackends", () => {
  it("takes the given store, else the transport's own", () => {
    const t = new InMemoryTransport();
    const given = new MemoryStateStore();
    expect(entityBackends(t, given)).toMatchObject({ store: given, ownsStore: false });
    expect(entityBackends(t, undefined)).toMatchObject({ store: t.stateStore(), ownsStore: false });
  });

  it("makes one from FASTAGENTIC_STATE_STORE for a transport without a store, or says how to", () => {
    delete process.env["FASTAGENTIC_STATE_STORE"];
    expect(() => entityBackends(storeless(), undefined)).toThrow(/FASTAGENTIC_STATE_STORE/);
    process.env["FASTAGENTIC_STATE_STORE"] = "memory://";
    const b = entityBackends(storeless(), undefined);
    expect(b.store).toBeInstanceOf(MemoryStateStore);
    expect(b.ownsStore).toBe(true);
    process.env["FASTAGENTIC_STATE_STORE"] = "postgres://u:pw@localhost:1/db?table=t1";
    expect(entityBackends(storeless(), undefined).store.kind).toBe("postgres");
  });

  it("refuses a transport without entity mailboxes", () => {
    const t = Object.assign(Object.create(new InMemoryTransport()) as Transport, {
      kind: "custom",
      entityMailbox: undefined,
    });
    expect(() => entityBackends(t, undefined)).toThrow(/no entity mailboxes/);
  });
});

describe("stateStoreFromUrl", () => {
  it("refuses what is not a store URL without echoing its credentials", () => {
    expect(() => stateStoreFromUrl("redis://me:secret@host")).toThrow(ConfigError);
    expect(() => stateStoreFromUrl("redis://me:secret@host")).not.toThrow(/secret/);
    expect(() => stateStoreFromUrl("postgres://me:secret@[bad")).toThrow(ConfigError);
    expect(() => stateStoreFromUrl("postgres://me:secret@[bad")).not.toThrow(/secret/);
  });
});
