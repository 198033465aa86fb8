/**
 * `fastagentic/transports/amqp`: the RabbitMQ transport. `transportFromUrl("amqp://…")` loads this
 * module lazily and calls `amqpTransportFromUrl`.
 */
import type { TransportUrlOptions } from "../../src/transport-url.js";
import type { Transport } from "../transport.js";
import { AmqpTransport } from "./amqp.transport.js";
import { type AmqpReconnectOptions, type AmqpTransportOptions, amqpOptionsFromUrl } from "./amqp-options.js";

export { type AmqpReconnectOptions, AmqpTransport, type AmqpTransportOptions };

/**
 * The transport of an `amqp://user:pass@host:5672/vhost?namespace=app` (or `amqps://`) URL.
 * User, password and vhost come from the URL; `options` may add any AmqpTransportOptions
 * (e.g. `tls` for amqps). `clock` is accepted and ignored: broker timers run on real time.
 */
export function amqpTransportFromUrl(url: URL, options: TransportUrlOptions = {}): Transport {
  return new AmqpTransport(amqpOptionsFromUrl(url, options));
}
