/**
 * The in-memory entity phase alone, for a CPU profile: `node --cpu-prof --import tsx
 * bench/entities-profile.ts [events] [ids]` (against src/ through tsx, or the build with
 * TSX_TSCONFIG_PATH=bench/tsconfig.json). Prints events/s per round.
 */
import { Coordinator, InMemoryTransport, silentLogger, Worker } from "fastagentic";
import { Counter, type CounterRef } from "./paths/entities.bench.js";

const events = Number(process.argv[2] ?? 100_000);
const ids = Number(process.argv[3] ?? 1000);
const window = 1000;

const transport = new InMemoryTransport();
const worker = new Worker({ transport, logger: silentLogger });
worker.register(Counter);
await worker.start();
const coordinator = new Coordinator({
  transport,
  config: { minWorkers: 0, autoScale: false },
  logger: silentLogger,
});
await coordinator.start();
const refs = Array.from(
  { length: ids },
  (_, i) => coordinator.entity(Counter, `p-${i}`) as unknown as CounterRef,
);
const applied = () => worker.entityStats[0]?.applied ?? 0;
for (let round = 0; round < 4; round++) {
  const target = applied() + events;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < events) {
        const i = next++;
        await (refs[i % ids] as CounterRef).send({ type: "ADD", x: i });
      }
    }),
  );
  const deadline = t0 + 60_000;
  while (applied() < target && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const cpu = process.cpuUsage(cpu0);
  const cpuUs = (cpu.user + cpu.system) / events;
  console.log(
    `round ${round}: ${Math.round(events / ((performance.now() - t0) / 1000))} events/s, ${cpuUs.toFixed(1)} µs CPU/event (${applied()}/${target})`,
  );
}
await coordinator.stop({ graceful: false });
await worker.stop({ graceful: false });
await transport.close();
