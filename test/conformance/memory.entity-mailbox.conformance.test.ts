import { InMemoryTransport } from "../../transports/memory/memory.transport.js";
import { describeMailboxConformance, type MailboxEndpoint } from "./entity-mailbox-conformance.js";

describeMailboxConformance({
  name: "memory",
  available: async () => true,
  create: async (): Promise<MailboxEndpoint> => {
    const transport = new InMemoryTransport();
    await transport.connect();
    return {
      mailbox: transport.entityMailbox(),
      crash: async () => {},
      close: () => transport.close(),
    };
  },
  // One process: another client of the in-memory mailbox is the same object.
  peer: async (first) => first,
  dedup: true,
  sequenced: false,
  crashes: false,
});
