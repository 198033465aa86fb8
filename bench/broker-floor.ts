/**
 * RabbitMQ's own CPU per message, without fastagentic: raw amqplib publishing persistent messages
 * with confirms to a durable priority queue declared as fastagentic declares its work queues, and
 * a consumer (prefetch 128) acking them once per turn. Each variant takes one thing away; `--packs`
 * puts k task bodies in each message. Prints the broker's CPU (from /proc) per message and per task.
 *   TSX_TSCONFIG_PATH=bench/tsconfig.json npx tsx bench/broker-floor.ts \
 *     [--variants=base,no-priority,no-dlx,one-connection,no-confirms,transient,ack-each,queue-v1]
 *     [--packs=1,2,4,8,16] [--tasks=20000] [--rounds=3] [--amqp-url=amqp://…]
 * Every round is bounded (60 s); the queues are deleted at the end.
 */
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from "amqplib";
import { parseToolArgs, positiveFlag, UsageError } from "./bench-config.js";
import { brokerCpuMs } from "./harness/broker-cpu.js";

const VARIANTS = [
  "base",
  "no-priority",
  "no-dlx",
  "one-connection",
  "no-confirms",
  "transient",
  "ack-each",
  "queue-v1",
] as const;
type Variant = (typeof VARIANTS)[number];

const IN_FLIGHT = 1000;
const ROUND_MS = 60_000;
/** A task envelope as fastagentic sends one (about 200 bytes). */
const TASK = Buffer.from(
  JSON.stringify({
    v: 1,
    id: "task-Ab3dEf9hIj-1k2",
    type: "double",
    data: { x: 12345 },
    priority: 5,
    timeoutMs: 300000,
    enqueuedAt: 1_764_460_800_000,
    queue: "default",
    replyTo: "fa:sub.0123456789abcdef0123456789abcdef0123",
  }),
);

function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ROUND_MS} ms`)), ROUND_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

interface Result {
  messagesPerSec: number;
  brokerUsPerMessage: number;
}

async function measure(url: string, variant: Variant, pack: number, tasks: number, rounds: number) {
  const producer: ChannelModel = await amqp.connect(url, { noDelay: true });
  const consumer = variant === "one-connection" ? producer : await amqp.connect(url, { noDelay: true });
  const confirms = variant !== "no-confirms";
  const publishing: Channel | ConfirmChannel = confirms
    ? await producer.createConfirmChannel()
    : await producer.createChannel();
  const queue = `fa-broker-floor.${process.pid}.${variant}.${pack}`;
  const args: Record<string, unknown> = {};
  if (variant !== "no-priority") args["x-max-priority"] = 3;
  if (variant !== "queue-v1") args["x-queue-version"] = 2;
  if (variant !== "no-dlx") {
    args["x-dead-letter-exchange"] = "";
    args["x-dead-letter-routing-key"] = `${queue}.dead`;
  }
  await publishing.assertQueue(queue, { durable: true, arguments: args });
  const consuming = await consumer.createChannel();
  await consuming.prefetch(128);
  let received = 0;
  let wanted = 0;
  let arrived: (() => void) | undefined;
  let last: ConsumeMessage | undefined;
  let ackScheduled = false;
  let closing = false;
  const flushAcks = () => {
    ackScheduled = false;
    if (last !== undefined && !closing) consuming.ack(last, true);
    last = undefined;
  };
  await consuming.consume(queue, (message) => {
    if (message === null) return;
    if (variant === "ack-each") consuming.ack(message);
    else {
      last = message;
      if (!ackScheduled) {
        ackScheduled = true;
        setImmediate(flushAcks);
      }
    }
    if (++received >= wanted) arrived?.();
  });
  const body = Buffer.concat(Array.from({ length: pack }, () => TASK));
  const properties = { persistent: variant !== "transient", priority: 1 };
  const round = async (messages: number): Promise<void> => {
    wanted = received + messages;
    const allArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let sent = 0;
    let unconfirmed = 0;
    while (sent < messages) {
      let room: (() => void) | undefined;
      const roomMade = new Promise<void>((resolve) => {
        room = resolve;
      });
      while (unconfirmed < IN_FLIGHT && sent < messages) {
        sent++;
        if (confirms) {
          unconfirmed++;
          (publishing as ConfirmChannel).sendToQueue(queue, body, properties, () => {
            unconfirmed--;
            room?.();
          });
        } else publishing.sendToQueue(queue, body, properties);
      }
      if (confirms && sent < messages) await roomMade;
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await allArrived;
  };
  const messages = Math.max(1, Math.round(tasks / pack));
  const results: Result[] = [];
  try {
    await bounded(round(Math.min(messages, 3000)), "warm-up");
    for (let r = 0; r < rounds; r++) {
      const cpuBefore = brokerCpuMs("amqp");
      const start = performance.now();
      await bounded(round(messages), `round ${r + 1}`);
      const elapsed = performance.now() - start;
      const cpuAfter = brokerCpuMs("amqp");
      if (cpuBefore === undefined || cpuAfter === undefined) {
        throw new Error(
          "The broker's CPU cannot be read here (/proc, a local beam.smp): nothing to measure.",
        );
      }
      results.push({
        messagesPerSec: (messages * 1000) / elapsed,
        brokerUsPerMessage: ((cpuAfter - cpuBefore) * 1000) / messages,
      });
    }
  } finally {
    closing = true;
    await consuming.close().catch(() => {});
    await publishing.deleteQueue(queue).catch(() => {});
    await producer.close().catch(() => {});
    if (consumer !== producer) await consumer.close().catch(() => {});
  }
  return results;
}

async function main(): Promise<void> {
  const { own, config } = parseToolArgs(process.argv.slice(2), ["variants", "packs", "tasks", "rounds"]);
  const variants = (own.get("variants") ?? "base").split(",") as Variant[];
  for (const v of variants) {
    if (!VARIANTS.includes(v)) throw new UsageError(`Unknown variant "${v}": use ${VARIANTS.join(", ")}.`);
  }
  const packs = (own.get("packs") ?? "1").split(",").map(Number);
  if (packs.some((k) => !Number.isInteger(k) || k < 1))
    throw new UsageError("--packs takes positive integers");
  const tasks = positiveFlag(own, "tasks", 20_000);
  const rounds = positiveFlag(own, "rounds", 3);
  const url = config.amqpUrl;
  console.log("| variant | tasks per message | messages/s | broker µs per message | broker µs per task |");
  console.log("|---|---|---|---|---|");
  for (const variant of variants) {
    for (const pack of packs) {
      const results = await measure(url, variant, pack, tasks, rounds);
      const perMessage = results.map((r) => r.brokerUsPerMessage);
      const mean = perMessage.reduce((a, b) => a + b, 0) / perMessage.length;
      const rates = results.map((r) => Math.round(r.messagesPerSec).toLocaleString("en-US")).join(" / ");
      console.log(
        `| ${variant} | ${pack} | ${rates} | ${perMessage.map((x) => x.toFixed(1)).join(" / ")} | ${(mean / pack).toFixed(1)} |`,
      );
    }
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
