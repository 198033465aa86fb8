/** The event bus section: its targets (issue 17), its table lines and bench/results/events.svg. */
import { cpuText, type EventsResults, type EventsRow } from "../harness/events-bench.js";
import type { TargetResult } from "./bench-results.js";
import { target as checkTarget } from "./targets.js";

const target = (name: string, value: number | undefined, comparator: ">=" | "<=", limit: number) =>
  checkTarget(name, value, comparator, limit, "×", "a path of the ratio did not run");

function rate(results: EventsResults, id: string): number | undefined {
  const r = results.rows.find((x) => x.id === id);
  return r?.status === "ok" ? r.eventsPerSec : undefined;
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? undefined : a / b;

/** CPU µs per event per group (publisher + members + broker, over the groups the events reached). */
function cpuPerGroupEvent(results: EventsResults, id: string): number | undefined {
  const r = results.rows.find((x) => x.id === id);
  const c = r?.status === "ok" ? r.cpuUsPerEvent : undefined;
  if (c?.members === undefined || c.broker === undefined) return undefined;
  return (c.self + c.members + c.broker) / (r?.groups ?? 1);
}

/**
 * Fan-out to 3 groups against 1, each group's member in a process of its own: what each group's
 * throughput becomes (× slower) and what each group's delivery costs in CPU (×), on `broker`.
 */
export function fanOut(
  results: EventsResults,
  broker: "nats" | "amqp",
  client: "fa" | "raw" = "fa",
): { throughput?: number; cpuPerGroup?: number; perRound?: number[] } {
  const prefix = client === "fa" ? `ev-fa-${broker}` : `ev-raw-${broker === "nats" ? "jetstream" : "amqp"}`;
  const one = `${prefix}-1p`;
  const three = `${prefix}-3p`;
  const out: { throughput?: number; cpuPerGroup?: number; perRound?: number[] } = {};
  const t = ratio(rate(results, one), rate(results, three));
  if (t !== undefined) out.throughput = t;
  // Paired within each round (the two rows ran one after the other): less exposed to a slow spell.
  const r1 = results.rows.find((x) => x.id === one)?.rounds ?? [];
  const r3 = results.rows.find((x) => x.id === three)?.rounds ?? [];
  if (r1.length > 0 && r1.length === r3.length) out.perRound = r1.map((a, i) => a / (r3[i] as number));
  const c = ratio(cpuPerGroupEvent(results, three), cpuPerGroupEvent(results, one));
  if (c !== undefined) out.cpuPerGroup = c;
  return out;
}

export function eventTargets(results: EventsResults): TargetResult[] {
  const r = (id: string) => rate(results, id);
  return [
    target(
      "events NATS: durable publish→handler ≥ 0.85× raw JetStream",
      ratio(r("ev-fa-nats"), r("ev-raw-jetstream")),
      ">=",
      0.85,
    ),
    target(
      "events RabbitMQ: durable publish→handler ≥ 0.85× raw amqplib",
      ratio(r("ev-fa-amqp"), r("ev-raw-amqp")),
      ">=",
      0.85,
    ),
    target(
      "events NATS: fan-out, CPU per event per group with 3 groups ≤ 1.3× one group's",
      fanOut(results, "nats").cpuPerGroup,
      "<=",
      1.3,
    ),
    target(
      "events RabbitMQ: fan-out, CPU per event per group with 3 groups ≤ 1.3× one group's",
      fanOut(results, "amqp").cpuPerGroup,
      "<=",
      1.3,
    ),
    target(
      "events NATS: fan-out, each group's throughput with 3 groups ≤ 1.3× slower than one group's (2 cores: CPU-bound)",
      fanOut(results, "nats").throughput,
      "<=",
      1.3,
    ),
    target(
      "events RabbitMQ: fan-out, each group's throughput with 3 groups ≤ 1.3× slower than one group's (2 cores: CPU-bound)",
      fanOut(results, "amqp").throughput,
      "<=",
      1.3,
    ),
    target(
      "events NATS: durable:false ≥ 1× Moleculer's event emit over NATS",
      ratio(r("ev-fa-nats-live"), r("ev-moleculer-nats")),
      ">=",
      1,
    ),
  ];
}

export function eventLines(results: EventsResults): string {
  const lines = [
    `Event bus (${results.events.toLocaleString("en-US")} events, ${results.window} publishes in flight):`,
  ];
  for (const row of results.rows) {
    const value =
      row.status === "ok"
        ? `${Math.round(row.eventsPerSec ?? 0).toLocaleString("en-US")} events/s${row.p50Ms === undefined ? "" : `, p50 ${row.p50Ms.toFixed(2)} ms`}, CPU µs/event ${cpuText(row.cpuUsPerEvent)}`
        : `${row.status}: ${row.reason ?? ""}`;
    lines.push(`  ${row.label.padEnd(72)} ${value}`);
  }
  for (const broker of ["nats", "amqp"] as const) {
    const f = fanOut(results, broker);
    if (f.throughput === undefined) continue;
    const cpu = f.cpuPerGroup === undefined ? "" : `, CPU per event per group ${f.cpuPerGroup.toFixed(2)}×`;
    const rounds = (x: { perRound?: number[] }) =>
      x.perRound ? ` [per round ${x.perRound.map((n) => n.toFixed(2)).join(", ")}]` : "";
    const raw = fanOut(results, broker, "raw");
    const rawText =
      raw.throughput === undefined
        ? ""
        : `; raw ${broker === "nats" ? "JetStream" : "amqplib"} in this run: ${raw.throughput.toFixed(2)}× slower${rounds(raw)}, CPU ${raw.cpuPerGroup?.toFixed(2) ?? "–"}×`;
    lines.push(
      `  fan-out on ${broker === "nats" ? "NATS" : "RabbitMQ"}, 3 groups vs 1: each group ${f.throughput.toFixed(2)}× slower${rounds(f)}${cpu}${rawText}`,
    );
  }
  return lines.join("\n");
}

const COLORS = { fastagentic: "#2563eb", raw: "#9ca3af", peer: "#f59e0b" } as const;

export function eventsSvg(results: EventsResults, date: string): string {
  const rows: EventsRow[] = results.rows;
  const max = Math.max(1, ...rows.map((r) => r.eventsPerSec ?? 0));
  const width = 920;
  const labelW = 450;
  const barMax = 300;
  const rowH = 30;
  const top = 64;
  const height = top + rows.length * rowH + 24;
  const esc = (t: string) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="16" font-weight="600" fill="#111827">Events per second, publish → handler (blue: fastagentic, grey: raw client, amber: Moleculer)</text>`,
    `<text x="16" y="46" fill="#6b7280">${esc(`${date.slice(0, 10)} · ${results.events} events, ${results.window} in flight · brokers on loopback`)}</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    parts.push(
      `<text x="${labelW - 8}" y="${y + 19}" text-anchor="end" fill="#111827">${esc(r.label)}</text>`,
    );
    if (r.status !== "ok" || r.eventsPerSec === undefined) {
      parts.push(`<text x="${labelW}" y="${y + 19}" fill="#b91c1c">${esc(r.status)}</text>`);
      return;
    }
    const w = Math.max(2, (r.eventsPerSec / max) * barMax);
    const p50 = r.p50Ms === undefined ? "" : ` · p50 ${r.p50Ms.toFixed(2)} ms`;
    parts.push(
      `<rect x="${labelW}" y="${y + 5}" width="${w.toFixed(1)}" height="${rowH - 10}" rx="3" fill="${COLORS[r.kind]}"/>`,
      `<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 19}" fill="#374151">${Math.round(r.eventsPerSec).toLocaleString("en-US")}${p50}</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
