/**
 * One event group's member in a process of its own, as services run (bench/harness/events-bench.ts):
 * subscribes, counts what reaches its handler, reports the count with its own CPU time over IPC (at
 * most every 20 ms, and once the count stops moving). `kind`: "fa" (a durable group), "fa-live"
 * (`durable: false`), or "moleculer" (a Moleculer ServiceBroker on the NATS transporter whose
 * service handles the event: Moleculer's own event emit, the peer of `durable: false`).
 */
import { EventBus, silentLogger, transportFromUrl } from "fastagentic";
import moleculer from "moleculer";

export interface MemberSpec {
  kind: "fa" | "fa-live" | "moleculer";
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
