/**
 * The type-scaling measure alone (it also runs in `npm run bench`, section "scaling"):
 *   npm run build && TSX_TSCONFIG_PATH=bench/tsconfig.json npx tsx bench/type-scaling.ts \
 *     [--counts=1,20,100,300] [--tags=6] [--submits=200] [--brokers=nats,amqp]
 * Prints the table and writes bench/results/type-scaling.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseToolArgs } from "./bench-config.js";
import { measureTypeScaling, typeScalingLines, typeScalingTargets } from "./harness/type-scaling.js";

async function main(): Promise<void> {
  const { own, config } = parseToolArgs(process.argv.slice(2), ["counts", "tags", "submits", "brokers"]);
  const counts = (own.get("counts") ?? "1,20,100,300").split(",").map(Number);
  const brokers = (own.get("brokers") ?? "nats,amqp").split(",") as Array<"nats" | "amqp">;
  const results = await measureTypeScaling(
    {
      natsUrl: config.natsUrl,
      amqpUrl: config.amqpUrl,
      runId: Date.now().toString(36),
      counts,
      tags: Number(own.get("tags") ?? 6),
      submits: Number(own.get("submits") ?? 200),
      brokers,
    },
    (line) => process.stderr.write(`${line}\n`),
  );
  process.stdout.write(`${typeScalingLines(results).join("\n")}\n`);
  for (const t of typeScalingTargets(results)) {
    const value = t.value === undefined ? "-" : t.value.toFixed(2);
    process.stdout.write(
      `  ${t.status.padEnd(4)} ${t.name}: ${value} ${t.unit} (${t.comparator} ${t.limit}; ${t.detail})\n`,
    );
  }
  mkdirSync(config.resultsDir, { recursive: true });
  writeFileSync(join(config.resultsDir, "type-scaling.json"), `${JSON.stringify(results, null, 2)}\n`);
}

main().then(
  () => setTimeout(() => process.exit(0), 500).unref(),
  (error: unknown) => {
    process.stderr.write(
      `type scaling failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
