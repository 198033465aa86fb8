/** Every round-trip path, in the order the table shows them (extras last, run only when named). */
import { amqpRawPath } from "./amqp-raw.bench.js";
import { amqpRawTwinPath, amqpTransportPath } from "./amqp-transport.bench.js";
import type { BenchPath, PathId } from "./bench-path.js";
import { bullmqPeerPath } from "./bullmq-peer.bench.js";
import { entityBrokerPath } from "./entities.bench.js";
import { fastagenticBrokerPath } from "./fastagentic-broker.bench.js";
import { fastagenticMemoryPath } from "./fastagentic-memory.bench.js";
import { jetstreamRawPath } from "./jetstream-raw.bench.js";
import { natsCoreRawPath } from "./nats-core-raw.bench.js";

export const PATHS: readonly BenchPath[] = [
  fastagenticMemoryPath,
  fastagenticBrokerPath("nats"),
  jetstreamRawPath,
  fastagenticBrokerPath("amqp"),
  amqpRawPath,
  natsCoreRawPath,
  bullmqPeerPath,
  // Extras, left out of a full run (BenchPath.extra):
  amqpTransportPath,
  amqpRawTwinPath,
  fastagenticBrokerPath("amqp-quorum"),
  // The entities section's ask paths (bench/harness/entities-bench.ts):
  entityBrokerPath("nats"),
  entityBrokerPath("amqp"),
];

export function pathById(id: string): BenchPath {
  const path = PATHS.find((p) => p.id === id);
  if (!path) throw new Error(`Unknown bench path "${id}"; known: ${PATHS.map((p) => p.id).join(", ")}.`);
  return path;
}

export type { PathId };
