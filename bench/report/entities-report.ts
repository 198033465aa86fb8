/** The entities section: its targets (issue 18), its table lines and bench/results/entities.svg. */
import type { EntitiesResults, EntitiesRow } from "../harness/entities-bench.js";
import type { TargetResult } from "./bench-results.js";
import { target } from "./targets.js";

function row(results: EntitiesResults, id: string): EntitiesRow | undefined {
  const r = results.rows.find((x) => x.id === id);
  return r?.status === "ok" ? r : undefined;
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? undefined : a / b;

export function entityTargets(results: EntitiesResults): TargetResult[] {
  const rate = (id: string) => row(results, id)?.eventsPerSec;
  const missing = "a path of the ratio did not run";
  return [
    target(
      "entities in memory: events/s with state kept ≥ 50,000",
      rate("ent-mem-send"),
      ">=",
      50_000,
      "/s",
      "the in-memory entity phase did not run",
    ),
    target(
      "entities NATS: send (state in KV) ≥ 0.5× raw JetStream work-queue round trip",
      ratio(rate("ent-nats-send"), rate("ent-raw-jetstream")),
      ">=",
      0.5,
      "×",
      missing,
    ),
    target(
      "entities RabbitMQ: send (state in PostgreSQL) ≥ 0.5× raw amqplib work-queue round trip",
      ratio(rate("ent-amqp-send"), rate("ent-raw-amqp")),
      ">=",
      0.5,
      "×",
      missing,
    ),
    target(
      "entities: cost per event with 100,000 ids held ≤ 1.3× with 1,000",
      ratio(row(results, "ent-mem-100k")?.usPerEvent, row(results, "ent-mem-1k")?.usPerEvent),
      "<=",
      1.3,
      "×",
      missing,
    ),
    target(
      "entities: CPU per event with 100,000 ids held ≤ 1.3× with 1,000",
      ratio(row(results, "ent-mem-100k")?.cpuUsPerEvent, row(results, "ent-mem-1k")?.cpuUsPerEvent),
      "<=",
      1.3,
      "×",
      missing,
    ),
  ];
}

function value(r: EntitiesRow): string {
  if (r.status !== "ok") return `${r.status}: ${(r.reason ?? "").replace(/\s+/g, " ").slice(0, 100)}`;
  const parts: string[] = [];
  if (r.eventsPerSec !== undefined) parts.push(`${Math.round(r.eventsPerSec).toLocaleString("en-US")}/s`);
  if (r.usPerEvent !== undefined) parts.push(`${r.usPerEvent.toFixed(2)} µs/event`);
  if (r.cpuUsPerEvent !== undefined) parts.push(`${r.cpuUsPerEvent.toFixed(1)} µs CPU/event`);
  if (r.p50Ms !== undefined) parts.push(`p50 ${r.p50Ms.toFixed(2)} ms`);
  return parts.join(", ");
}

export function entityLines(results: EntitiesResults): string {
  const lines = [
    `Entities (memory ${results.memoryEvents.toLocaleString("en-US")} events, brokers ${results.brokerEvents.toLocaleString("en-US")} events, over ${results.ids.toLocaleString("en-US")} ids, ${results.window} sends in flight; raw rows: round trips):`,
  ];
  for (const r of results.rows) lines.push(`  ${r.label.padEnd(72)} ${value(r)}`);
  for (const broker of ["nats", "amqp"] as const) {
    const send = row(results, `ent-${broker}-send`)?.eventsPerSec;
    const raw = row(results, `ent-raw-${broker === "nats" ? "jetstream" : "amqp"}`);
    const ask = row(results, `ent-${broker}-ask`)?.p50Ms;
    const r = ratio(send, raw?.eventsPerSec);
    lines.push(
      `  ${broker === "nats" ? "NATS" : "RabbitMQ"}: send ${r === undefined ? "–" : `${r.toFixed(2)}×`} the raw round trip; ask p50 ${ask?.toFixed(2) ?? "–"} ms beside raw p50 ${raw?.p50Ms?.toFixed(2) ?? "–"} ms`,
    );
  }
  return lines.join("\n");
}

const COLORS = { fastagentic: "#2563eb", raw: "#9ca3af" } as const;

export function entitiesSvg(results: EntitiesResults, date: string): string {
  const rows = results.rows;
  const max = Math.max(1, ...rows.map((r) => r.eventsPerSec ?? 0));
  const width = 980;
  const labelW = 500;
  const barMax = 300;
  const rowH = 30;
  const top = 64;
  const height = top + rows.length * rowH + 24;
  const esc = (t: string) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="16" font-weight="600" fill="#111827">Entity events per second, state stored (blue: fastagentic, grey: raw round trip)</text>`,
    `<text x="16" y="46" fill="#6b7280">${esc(`${date.slice(0, 10)} · memory ${results.memoryEvents}, brokers ${results.brokerEvents} events over ${results.ids} ids, ${results.window} in flight · brokers on loopback`)}</text>`,
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
    const extra =
      (r.p50Ms === undefined ? "" : ` · p50 ${r.p50Ms.toFixed(2)} ms`) +
      (r.usPerEvent === undefined ? "" : ` · ${r.usPerEvent.toFixed(1)} µs/event`);
    parts.push(
      `<rect x="${labelW}" y="${y + 5}" width="${w.toFixed(1)}" height="${rowH - 10}" rx="3" fill="${COLORS[r.kind]}"/>`,
      `<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 19}" fill="#374151">${Math.round(r.eventsPerSec).toLocaleString("en-US")}${esc(extra)}</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
