import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^fastagentic\/transports\/nats$/, replacement: here("./transports/nats/index.ts") },
      { find: /^fastagentic\/transports\/amqp$/, replacement: here("./transports/amqp/index.ts") },
      { find: /^fastagentic\/transports\/postgres$/, replacement: here("./transports/postgres/index.ts") },
      { find: /^fastagentic$/, replacement: here("./src/index.ts") },
    ],
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ["default"],
  },
});
