/**
 * fastagentic/transports/nats: work queues on NATS JetStream, events on core NATS.
 *
 *   const transport = new NatsTransport({ servers: ["nats://10.0.0.1:4222"], namespace: "shop" });
 *   // or: transportFromUrl("nats://user:pass@10.0.0.1:4222?namespace=shop")
 */
import type { TransportUrlOptions } from "../../src/transport-url.js";
import type { Transport } from "../transport.js";
import { NatsTransport } from "./nats.transport.js";
import { natsOptionsFromUrl } from "./nats-options.js";

export { NatsTransport } from "./nats.transport.js";
export { PRIORITY_LEVELS } from "./nats-names.js";
export {
  DEFAULT_NAMESPACE,
  HEADER_ROOM_BYTES,
  type NatsTlsOptions,
  type NatsTransportOptions,
  natsOptionsFromUrl,
} from "./nats-options.js";

/** The factory `transportFromUrl()` calls for nats:// and tls:// URLs. */
export function natsTransportFromUrl(url: URL, options: TransportUrlOptions): Transport {
  return new NatsTransport(natsOptionsFromUrl(url, options));
}
