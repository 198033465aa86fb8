import { ConfigError } from "../../src/errors.js";
import type { Transport } from "../transport.js";

/** Placeholder until the NATS adapter lands (issue 3): fails with a clear message. */
export function natsTransportFromUrl(_url: URL, _options: unknown): Transport {
  throw new ConfigError("The NATS transport is not available in this build yet.");
}
