/**
 * One event group's member in a process of its own, as services run (bench/harness/events-bench.ts):
 * subscribes, counts what reaches its handler, reports the count with its own CPU time over IPC (at
 * most every 20 ms, and once the count stops moving). `kind`: "fa" (a durable group), "fa-live"
 * (`durable: false`), or "moleculer" (a Moleculer ServiceBroker on the NATS transporter whose
 * service handles the event: Moleculer's own event emit, the peer of `durable: false`), or the raw
 * clients' group consumers of the raw fan-out rows (bench/harness/events-raw-fanout.ts): "raw-js"
 * (a JetStream durable pull consumer `group` on the stream `<namespace>_raw`, `consume()`, one ack
 * per message) and "raw-amqp" (the queue `<namespace>:raw.<group>`, prefetch 256, manual ack).
 */
import { connect as natsConnect } from "@nats-io/transport-node";
import { connect as amqpConnect } from "amqplib";
import { EventBus, silentLogger, transportFromUrl } from "fastagentic";
import moleculer from "moleculer";

export interface MemberSpec {
  kind: "fa" | "fa-live" | "moleculer" | "raw-js" | "raw-amqp";
  url: string;
  namespace: string;
  group: string;
}

export interface MemberReport {
  type: "ready" | "count";
  count?: number;
  /** This process's CPU time so far, µs (user + system). */
  cpuUs?: number;
}

const spec = JSON.parse(process.env["BENCH_EVENTS_MEMBER"] ?? "{}") as MemberSpec;
let count = 0;
let reported = -1;
const send = (m: MemberReport) => process.send?.(m);
const report = () => {
  if (count === reported) return;
  reported = count;
  const cpu = process.cpuUsage();
  send({ type: "count", count, cpuUs: cpu.user + cpu.system });
};
setInterval(report, 20);

let stop: () => Promise<void>;
if (spec.kind === "moleculer") {
  const broker = new moleculer.ServiceBroker({
    namespace: spec.namespace,
    nodeID: `${spec.group}-${process.pid}`,
    transporter: spec.url,
    logger: false,
  });
  broker.createService({
    name: spec.group,
    events: {
      "bench.order"() {
        count++;
      },
    },
  });
  await broker.start();
  stop = () => broker.stop();
} else if (spec.kind === "raw-js") {
  const { jetstream } = await import("@nats-io/jetstream");
  const nc = await natsConnect({ servers: spec.url.replace(/^nats:\/\//, "") });
  const consumer = await jetstream(nc).consumers.get(`${spec.namespace}_raw`, spec.group);
  const messages = await consumer.consume({ max_messages: 256 });
  const decoder = new TextDecoder();
  const loop = (async () => {
    for await (const m of messages) {
      JSON.parse(decoder.decode(m.data));
      count++;
      m.ack();
    }
  })();
  stop = async () => {
    messages.stop();
    await loop.catch(() => {});
    await nc.close();
  };
} else if (spec.kind === "raw-amqp") {
  const conn = await amqpConnect(spec.url, { noDelay: true, timeout: 5000 });
  const ch = await conn.createChannel();
  await ch.prefetch(256);
  await ch.consume(`${spec.namespace}:raw.${spec.group}`, (m) => {
    if (!m) return;
    JSON.parse(m.content.toString());
    count++;
    ch.ack(m);
  });
  stop = () => conn.close();
} else {
  const transport = transportFromUrl(spec.url, { namespace: spec.namespace });
  const bus = new EventBus({ transport, logger: silentLogger });
  await bus.subscribe(
    "bench.order",
    () => {
      count++;
    },
    spec.kind === "fa"
      ? { group: spec.group, concurrency: 256, timeoutMs: 0 }
      : { group: spec.group, durable: false, concurrency: 256, timeoutMs: 0 },
  );
  stop = async () => {
    await bus.close();
    await transport.close();
  };
}
send({ type: "ready" });
process.on("disconnect", async () => {
  report();
  await stop().catch(() => {});
  process.exit(0);
});
