/**
 * The event bus section of `npm run bench`: durable publish → one group's handler against the raw
 * clients doing the same in the same run (JetStream publish + durable pull consumer; amqplib
 * confirms + manual ack), with publisher and handler in this process on both sides; fan-out to 3
 * groups against 1, each group's member in a process of its own (as services run); `durable: false`
 * against Moleculer's event emit over NATS, the handler in a process of its own on both sides; and
 * p50 of one event publish → handler beside each raw client's. Every row also records the CPU per
 * event of the publishing process, the member processes and the broker.
 */
import { brokerCpuByPid, brokerCpuDeltaMs } from "./broker-cpu.js";
import {
  type Flow,
  faFlow,
  faProcessesFlow,
  moleculerFlow,
  rawAmqpFlow,
  rawCoreNatsFlow,
  rawJetStreamFlow,
} from "./events-flows.js";
import { rawFanOutSpecs } from "./events-raw-fanout.js";

export interface EventsRow {
  id: string;
  label: string;
  kind: "fastagentic" | "raw" | "peer";
  broker: "nats" | "amqp";
  status: "ok" | "unavailable" | "failed";
  /** Events per second reaching every group (each group gets them all): the best round's. */
  eventsPerSec?: number;
  /** Every round's events per second. */
  rounds?: number[];
  /** Groups the events went to (fan-out). */
  groups?: number;
  /** CPU per published event over the measured phase. */
  cpuUsPerEvent?: CpuPerEvent;
  p50Ms?: number;
  reason?: string;
}

/** CPU µs per published event: this (publishing) process, the member processes, the broker. */
export interface CpuPerEvent {
  /** The bench's process: the publisher, and the handlers when they run in it. */
  self: number;
  /** The member processes together (when each group's member runs in a process of its own). */
  members?: number;
  /** The broker's processes (read from /proc; includes whatever else they serve meanwhile). */
  broker?: number;
}

export interface EventsResults {
  events: number;
  window: number;
  rows: EventsRow[];
}

// ---- the section --------------------------------------------------------------------------------

export interface Spec {
  id: string;
  label: string;
  kind: EventsRow["kind"];
  broker: EventsRow["broker"];
  make(ns: string): Promise<Flow>;
  latency: boolean;
}

async function throughput(flow: Flow, events: number, window: number): Promise<number> {
  const started = performance.now();
  let next = 0;
  const lanes = Array.from({ length: window }, async () => {
    while (next < events) await flow.publish(next++);
  });
  await Promise.all(lanes);
  await flow.handled(events);
  return events / ((performance.now() - started) / 1000);
}

async function p50(flow: Flow, calls: number, offset: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await flow.publish(offset + i);
    await flow.handled(offset + i + 1);
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] as number;
}

/** CPU so far: this process, the member processes (when they are separate), the broker's by pid. */
function cpuNow(flow: Flow, broker: string): { self: number; members?: number; broker: Map<number, number> } {
  const own = process.cpuUsage();
  const members = flow.membersCpuUs();
  return {
    self: own.user + own.system,
    ...(members === undefined ? {} : { members }),
    broker: brokerCpuByPid(broker),
  };
}

/** The event bus rows, in the order they run; `only` (ids) picks some. */
export function eventSpecs(natsUrl: string, amqpUrl: string): Spec[] {
  const specs = faSpecs(natsUrl, amqpUrl);
  // The raw clients' own fan-out rows right after ours (the reference for the fan-out target).
  const raw = rawFanOutSpecs(natsUrl, amqpUrl);
  for (const broker of ["nats", "amqp"] as const) {
    const at = specs.findIndex((s) => s.id === `ev-fa-${broker}-3p`) + 1;
    specs.splice(at, 0, ...raw.filter((s) => s.broker === broker));
  }
  return specs;
}

function faSpecs(natsUrl: string, amqpUrl: string): Spec[] {
  return [
    {
      id: "ev-fa-nats",
      label: "fastagentic events, NATS (durable, 1 group)",
      kind: "fastagentic",
      broker: "nats",
      make: (ns) => faFlow(natsUrl, ns, 1, true),
      latency: true,
    },
    {
      id: "ev-raw-jetstream",
      label: "raw JetStream publish + durable pull consumer",
      kind: "raw",
      broker: "nats",
      make: (ns) => rawJetStreamFlow(natsUrl, ns),
      latency: true,
    },
    {
      id: "ev-fa-nats-1p",
      label: "fastagentic events, NATS, 1 group in its own process",
      kind: "fastagentic",
      broker: "nats",
      make: (ns) => faProcessesFlow(natsUrl, ns, 1, true),
      latency: false,
    },
    {
      id: "ev-fa-nats-3p",
      label: "fastagentic events, NATS, 3 groups, a process each (per group)",
      kind: "fastagentic",
      broker: "nats",
      make: (ns) => faProcessesFlow(natsUrl, ns, 3, true),
      latency: false,
    },
    {
      id: "ev-fa-nats-live",
      label: "fastagentic events, NATS, durable: false, handler in its own process",
      kind: "fastagentic",
      broker: "nats",
      make: (ns) => faProcessesFlow(natsUrl, ns, 1, false),
      latency: false,
    },
    {
      id: "ev-moleculer-nats",
      label: "Moleculer 0.14 event emit over NATS, handler in its own process",
      kind: "peer",
      broker: "nats",
      make: (ns) => moleculerFlow(natsUrl, ns),
      latency: false,
    },
    {
      id: "ev-raw-nats-core",
      label: "raw core NATS publish / queue subscribe (one process, reference)",
      kind: "raw",
      broker: "nats",
      make: (ns) => rawCoreNatsFlow(natsUrl, ns),
      latency: false,
    },
    {
      id: "ev-fa-amqp",
      label: "fastagentic events, RabbitMQ (durable, 1 group)",
      kind: "fastagentic",
      broker: "amqp",
      make: (ns) => faFlow(amqpUrl, ns, 1, true),
      latency: true,
    },
    {
      id: "ev-raw-amqp",
      label: "raw amqplib (topic exchange, durable queue, confirms, manual ack)",
      kind: "raw",
      broker: "amqp",
      make: (ns) => rawAmqpFlow(amqpUrl, ns),
      latency: true,
    },
    {
      id: "ev-fa-amqp-1p",
      label: "fastagentic events, RabbitMQ, 1 group in its own process",
      kind: "fastagentic",
      broker: "amqp",
      make: (ns) => faProcessesFlow(amqpUrl, ns, 1, true),
      latency: false,
    },
    {
      id: "ev-fa-amqp-3p",
      label: "fastagentic events, RabbitMQ, 3 groups, a process each (per group)",
      kind: "fastagentic",
      broker: "amqp",
      make: (ns) => faProcessesFlow(amqpUrl, ns, 3, true),
      latency: false,
    },
  ];
}

export async function measureEvents(
  options: {
    natsUrl: string;
    amqpUrl: string;
    events: number;
    window: number;
    latencyCalls: number;
    runId: string;
    /** Row ids to run; empty: all. */
    only?: readonly string[];
    /** Times every row runs, interleaved (a slow spell of this shared machine then falls on
     * both sides of a ratio); each row reports its best. Default 1. */
    rounds?: number;
  },
  log: (line: string) => void,
): Promise<EventsResults> {
  const only = options.only ?? [];
  const specs = eventSpecs(options.natsUrl, options.amqpUrl).filter(
    (s) => only.length === 0 || only.includes(s.id),
  );
  const best = new Map<string, EventsRow>();
  const rounds = options.rounds ?? 1;
  for (let round = 1; round <= rounds; round++) {
    for (const spec of specs) {
      const earlier = best.get(spec.id);
      if (earlier?.status === "failed") continue;
      log(`events ${round}/${rounds}: ${spec.label} …`);
      const row = await measureRow(spec, `${options.runId}r${round}`, options, log);
      const rates = [
        ...(earlier?.rounds ?? []),
        ...(row.eventsPerSec === undefined ? [] : [row.eventsPerSec]),
      ];
      const keep =
        earlier === undefined || row.status !== "ok" || (row.eventsPerSec ?? 0) > (earlier.eventsPerSec ?? 0)
          ? row
          : earlier;
      best.set(spec.id, { ...keep, rounds: rates });
    }
  }
  return { events: options.events, window: options.window, rows: [...best.values()] };
}

async function measureRow(
  spec: Spec,
  runId: string,
  options: { events: number; window: number; latencyCalls: number },
  log: (line: string) => void,
): Promise<EventsRow> {
  const ns = `bev${runId}${spec.id.replace(/[^a-z0-9]/g, "")}`;
  let flow: Flow | undefined;
  try {
    flow = await spec.make(ns);
    const f = flow;
    // Warm up, then measure.
    const warm = Math.min(2000, options.events);
    await throughput(f, warm, options.window);
    const groups = spec.id.endsWith("-3p") ? 3 : 1;
    const before = cpuNow(f, spec.broker);
    const rate = await throughput(
      { ...f, handled: (count) => f.handled(warm + count) },
      options.events,
      options.window,
    );
    const after = cpuNow(f, spec.broker);
    const per = (a: number | undefined, b: number | undefined) =>
      a === undefined || b === undefined ? undefined : (a - b) / options.events;
    const cpu: CpuPerEvent = { self: per(after.self, before.self) as number };
    const members = per(after.members, before.members);
    if (members !== undefined) cpu.members = members;
    const brokerMs = brokerCpuDeltaMs(before.broker, after.broker);
    if (brokerMs !== undefined) cpu.broker = (brokerMs * 1000) / options.events;
    const row: EventsRow = {
      id: spec.id,
      label: spec.label,
      kind: spec.kind,
      broker: spec.broker,
      status: "ok",
      eventsPerSec: rate,
      groups,
      cpuUsPerEvent: cpu,
    };
    if (spec.latency) {
      const base = warm + options.events;
      row.p50Ms = await p50({ ...f, handled: (count) => f.handled(count) }, options.latencyCalls, base);
    }
    log(
      `  ${Math.round(rate)} events/s${row.p50Ms === undefined ? "" : `, p50 ${row.p50Ms.toFixed(2)} ms`}, CPU µs/event ${cpuText(cpu)}`,
    );
    return row;
  } catch (error) {
    const reason = (error as Error).message;
    log(`  failed: ${reason}`);
    return { id: spec.id, label: spec.label, kind: spec.kind, broker: spec.broker, status: "failed", reason };
  } finally {
    await flow?.close().catch(() => {});
  }
}

/** "publisher process + member processes + broker" CPU µs per published event. */
export function cpuText(c: CpuPerEvent | undefined): string {
  if (!c) return "–";
  const parts = [c.self, ...(c.members === undefined ? [] : [c.members])].map((n) => n.toFixed(0));
  return `${parts.join("+")}${c.broker === undefined ? "" : ` + broker ${c.broker.toFixed(0)}`}`;
}
