import { ConfigError } from "../../src/errors.js";
import type { Transport } from "../transport.js";

/** Placeholder until the AMQP adapter lands (issue 4): fails with a clear message. */
export function amqpTransportFromUrl(_url: URL, _options: unknown): Transport {
  throw new ConfigError("The AMQP transport is not available in this build yet.");
}
