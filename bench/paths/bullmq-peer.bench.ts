/**
 * The peer: BullMQ on the local Redis. The worker process runs a BullMQ Worker; the producer adds
 * jobs and gets results from one QueueEvents "completed" listener (a reply map, as the raw paths
 * do, rather than a listener per job). The queue is obliterated at the end.
 */
import { Queue, QueueEvents, Worker } from "bullmq";
import { type BenchPath, type PathSpec, ReplyMap, within } from "./bench-path.js";

function connectionOf(spec: PathSpec) {
  const url = new URL(spec.redisUrl);
  return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
}

function queueName(spec: PathSpec): string {
  return `${spec.ns}-bullmq`;
}

const never = new Promise<never>(() => {});

export const bullmqPeerPath: BenchPath = {
  id: "bullmq",
  label: "BullMQ 6.7 on Redis (peer)",
  kind: "peer",
  broker: "redis",

  async probe(spec) {
    const queue = new Queue(queueName(spec), { connection: connectionOf(spec) });
    queue.on("error", () => {});
    try {
      await within(queue.waitUntilReady(), 5000, "connecting to Redis");
    } finally {
      await within(queue.close(), 5000, "closing the probe").catch(() => {});
    }
  },

  async worker(spec) {
    let started = 0;
    const worker = new Worker(
      queueName(spec),
      async (job) => {
        started++;
        if (spec.hold) await never;
        return (job.data as { x: number }).x * 2;
      },
      { connection: connectionOf(spec), concurrency: spec.concurrency },
    );
    worker.on("error", () => {});
    await worker.waitUntilReady();
    return {
      started: () => started,
      close: () => within(worker.close(true), 10_000, "closing the worker").catch(() => {}),
    };
  },

  async client(spec) {
    const connection = connectionOf(spec);
    const name = queueName(spec);
    const queue = new Queue(name, { connection, streams: { events: { maxLen: 100_000 } } });
    const events = new QueueEvents(name, { connection });
    queue.on("error", () => {});
    events.on("error", () => {});
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    const replies = new ReplyMap();
    events.on("completed", ({ jobId, returnvalue }) => replies.resolve(jobId, Number(returnvalue)));
    let seq = 0;
    return {
      async call(x) {
        const jobId = `j${++seq}`;
        const result = replies.wait(jobId);
        await queue.add("double", { x }, { jobId, removeOnComplete: true, removeOnFail: true });
        return result;
      },
      async close() {
        await within(queue.obliterate({ force: true }), 10_000, "obliterating the queue").catch(() => {});
        await within(events.close(), 5000, "closing QueueEvents").catch(() => {});
        await within(queue.close(), 5000, "closing the queue").catch(() => {});
      },
    };
  },
};
