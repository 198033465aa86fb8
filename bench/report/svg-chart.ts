/**
 * bench/results/throughput.svg: one horizontal bar per round-trip path (tasks/s, p50 beside it),
 * coloured by kind: fastagentic, raw client, peer. Hand-rolled SVG, no dependency.
 */
import type { BenchResults } from "./bench-results.js";

const COLORS = { fastagentic: "#2563eb", raw: "#9ca3af", peer: "#f59e0b" } as const;
const WIDTH = 820;
const LABEL_W = 330;
const BAR_MAX = 330;
const ROW_H = 30;
const TOP = 64;

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function throughputSvg(results: BenchResults): string {
  const rows = results.roundTrips;
  const max = Math.max(1, ...rows.map((r) => r.tasksPerSec ?? 0));
  const height = TOP + rows.length * ROW_H + 48;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="13">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="16" font-weight="600" fill="#111827">Task round trips per second (producer → worker process → result)</text>`,
    `<text x="16" y="46" fill="#6b7280">${escapeXml(
      `${results.date.slice(0, 10)} · ${results.machine.cpus} cores · Node ${results.machine.node} · ` +
        `${results.config.tasks.toLocaleString("en-US")} tasks, ${results.config.inflight} in flight · brokers on loopback`,
    )}</text>`,
  ];
  rows.forEach((r, i) => {
    const y = TOP + i * ROW_H;
    parts.push(
      `<text x="${LABEL_W - 8}" y="${y + 19}" text-anchor="end" fill="#111827">${escapeXml(r.label)}</text>`,
    );
    if (r.status !== "ok" || r.tasksPerSec === undefined) {
      parts.push(`<text x="${LABEL_W}" y="${y + 19}" fill="#b91c1c">${escapeXml(r.status)}</text>`);
      return;
    }
    const w = Math.max(2, (r.tasksPerSec / max) * BAR_MAX);
    const p50 = r.p50Ms === undefined ? "" : ` · p50 ${r.p50Ms.toFixed(2)} ms`;
    parts.push(
      `<rect x="${LABEL_W}" y="${y + 5}" width="${w.toFixed(1)}" height="${ROW_H - 10}" rx="3" fill="${COLORS[r.kind]}"/>`,
      `<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${y + 19}" fill="#374151">${Math.round(r.tasksPerSec).toLocaleString("en-US")}${p50}</text>`,
    );
  });
  const ly = TOP + rows.length * ROW_H + 24;
  let lx = LABEL_W;
  for (const [kind, label] of [
    ["fastagentic", "fastagentic"],
    ["raw", "raw client, same durability"],
    ["peer", "peer"],
  ] as const) {
    parts.push(
      `<rect x="${lx}" y="${ly - 10}" width="12" height="12" rx="2" fill="${COLORS[kind]}"/>`,
      `<text x="${lx + 18}" y="${ly}" fill="#374151">${label}</text>`,
    );
    lx += 40 + label.length * 7;
  }
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
