/**
 * Runs one block of tests on every transport: in memory, on the shared NATS server and on the
 * shared RabbitMQ (holding the cross-process RabbitMQ lock while its block runs). Each transport is
 * in a namespace of its own and deletes what it created when it closes. A broker that cannot be
 * reached skips its block loudly (fails in CI: see test/helpers/brokers.ts).
 */
import { afterAll, beforeAll, describe } from "vitest";
import { silentLogger } from "../../../src/logger.js";
import { InMemoryTransport } from "../../../transports/memory/memory.transport.js";
import type { Transport } from "../../../transports/transport.js";
import { amqpAvailable, testTransport as amqpTransport } from "../amqp/amqp-helpers.js";
import { BROKER_LOCK_WAIT_MS, lockBroker } from "../amqp/broker-lock.js";
import { natsAvailable, testTransport as natsTransport } from "../nats/nats-helpers.js";

export type TransportKind = "memory" | "nats" | "amqp";

export interface TransportCase {
  kind: TransportKind;
  /** A new transport in a namespace of its own (peers share one: pass the first's namespace). */
  make(namespace?: string): Transport;
  /** False when the broker is not reachable (the block's tests then skip). */
  readonly ready: boolean;
}

const makers: Record<TransportKind, (namespace?: string) => Transport> = {
  memory: () => new InMemoryTransport(),
  nats: (namespace) => natsTransport(namespace ? { namespace } : {}),
  amqp: (namespace) => amqpTransport(namespace ? { namespace, logger: silentLogger } : {}),
};

/** describe(`${title} (${kind})`) for each transport; `body` gets the case (check `ready` in tests). */
export function describeEachTransport(
  title: string,
  body: (t: TransportCase) => void,
  kinds: readonly TransportKind[] = ["memory", "nats", "amqp"],
): void {
  for (const kind of kinds) {
    describe(`${title} (${kind})`, () => {
      const state = { kind, make: makers[kind], ready: false };
      let release: (() => Promise<void>) | undefined;
      beforeAll(async () => {
        if (kind === "memory") state.ready = true;
        else if (kind === "nats") state.ready = await natsAvailable();
        else {
          state.ready = await amqpAvailable();
          if (state.ready) release = await lockBroker();
        }
      }, BROKER_LOCK_WAIT_MS + 10_000);
      afterAll(async () => {
        await release?.();
      });
      body(state);
    });
  }
}
