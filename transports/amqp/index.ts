/**
 * `fastagentic/transports/amqp`: the RabbitMQ transport. `transportFromUrl("amqp://…")` loads this
 * module lazily and calls `amqpTransportFromUrl`.
 */
import { validateKeys } from "../../src/config.js";
import type { TransportUrlOptions } from "../../src/transport-url.js";
import type { Transport } from "../transport.js";
import { AmqpTransport } from "./amqp.transport.js";
import { AMQP_OPTION_KEYS, type AmqpReconnectOptions, type AmqpTransportOptions } from "./amqp-options.js";

export { type AmqpReconnectOptions, AmqpTransport, type AmqpTransportOptions };

/**
 * The transport of an `amqp://user:pass@host:5672/vhost?namespace=app` (or `amqps://`) URL.
 * User, password and vhost come from the URL; `options` may add any AmqpTransportOptions
 * (e.g. `tls` for amqps). `clock` is accepted and ignored: broker timers run on real time.
 */
export function amqpTransportFromUrl(url: URL, options: TransportUrlOptions = {}): Transport {
  const { clock: _clock, ...rest } = options;
  const keys = AMQP_OPTION_KEYS.filter((k) => k !== "url");
  validateKeys("transportFromUrl() options for amqp://", rest, keys);
  return new AmqpTransport({ ...(rest as Omit<AmqpTransportOptions, "url">), url });
}
