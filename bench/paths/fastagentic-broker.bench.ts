/**
 * fastagentic over a broker: the producer is a Coordinator with no workers of its own (a pure
 * client), the worker process runs a WorkerPool with a `double` handler on the same URL and
 * namespace.
 */
import { Coordinator, silentLogger, type Transport, transportFromUrl, WorkerPool } from "fastagentic";
import { type BenchPath, type PathSpec, within } from "./bench-path.js";

type Broker = "nats" | "amqp" | "amqp-quorum";

function urlOf(broker: Broker, spec: PathSpec): string {
  if (broker === "nats") return spec.natsUrl;
  if (broker === "amqp") return spec.amqpUrl;
  // RabbitMQ quorum queues: one per priority level (an extra path, run when named).
  const url = new URL(spec.amqpUrl);
  url.searchParams.set("queueType", "quorum");
  return url.toString();
}

/**
 * The transport, set to delete what it created or used when it closes: the producer the shared
 * lane, the worker its profile's lane (`w2.<queue>.p<profile>`, declared by the worker only,
 * which was left on the broker after every run).
 */
function cleanTransport(broker: Broker, spec: PathSpec): Transport {
  const cleanup = broker === "nats" ? { streamsOnClose: "delete" } : { deleteOnClose: true };
  return transportFromUrl(urlOf(broker, spec), { namespace: spec.ns, ...cleanup });
}

const never = new Promise<never>(() => {});

export function fastagenticBrokerPath(broker: Broker): BenchPath {
  return {
    id: broker === "nats" ? "fa-nats" : broker === "amqp" ? "fa-amqp" : "fa-amqp-quorum",
    label:
      broker === "nats"
        ? "fastagentic on NATS JetStream"
        : broker === "amqp"
          ? "fastagentic on RabbitMQ"
          : "fastagentic on RabbitMQ quorum queues",
    kind: "fastagentic",
    broker: broker === "nats" ? "nats" : "amqp",
    baseline: broker === "nats" ? "raw-jetstream" : "raw-amqp",
    ...(broker === "amqp-quorum" ? { extra: true } : {}),

    async probe(spec) {
      // The adapter's own timeout is shorter than the bound, so its reason is the one reported.
      const transport = transportFromUrl(urlOf(broker, spec), { namespace: spec.ns, connectTimeoutMs: 4000 });
      try {
        await within(transport.connect(), 6000, `connecting to ${broker}`);
      } finally {
        await within(transport.close(), 5000, "closing the probe").catch(() => {});
      }
    },

    async worker(spec) {
      const transport = cleanTransport(broker, spec);
      const pool = new WorkerPool({
        minWorkers: 1,
        maxWorkers: 1,
        transport,
        config: { maxConcurrentTasks: spec.concurrency },
        logger: silentLogger,
      });
      let started = 0;
      pool.handler("double", async (data: { x: number }) => {
        started++;
        if (spec.hold) await never;
        return data.x * 2;
      });
      await pool.start();
      return {
        started: () => started,
        async close() {
          await within(pool.stop({ graceful: false }), 10_000, "stopping the pool").catch(() => {});
          await within(transport.close(), 10_000, "closing the transport").catch(() => {});
        },
      };
    },

    async client(spec) {
      const transport = cleanTransport(broker, spec);
      const coordinator = new Coordinator({
        transport,
        config: { minWorkers: 0, autoScale: false, maxQueueSize: 1_000_000 },
        logger: silentLogger,
      });
      await coordinator.start();
      return {
        call: (x) => coordinator.submit("double", { x }) as Promise<number>,
        async close() {
          await within(coordinator.stop({ graceful: false }), 10_000, "stopping the coordinator").catch(
            () => {},
          );
          await within(transport.close(), 10_000, "closing the transport").catch(() => {});
        },
      };
    },
  };
}
