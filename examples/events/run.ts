/**
 * The whole example on one machine: billing (one process), shipping (two competing processes),
 * then the API publishing; waits until every group has every event, stops the services, prints
 * what each handled and deletes what the run created on the broker.
 *   npx tsx examples/events/run.ts nats://127.0.0.1:4222
 *   npx tsx examples/events/run.ts amqp://guest:guest@127.0.0.1:5672
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { transportFromUrl } from "fastagentic";

const url = process.argv[2] ?? process.env["FASTAGENTIC_TRANSPORT"] ?? "nats://127.0.0.1:4222";
const namespace = `events-example-${process.pid}`;
const orders = Number(process.env["ORDERS"] ?? 50);
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const env = {
  ...process.env,
  FASTAGENTIC_TRANSPORT: url,
  FASTAGENTIC_NAMESPACE: namespace,
  ORDERS: String(orders),
};
const GUARD_MS = 60_000;

const lines: string[] = [];
let changed: () => void = () => {};
function start(script: string, ...args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", here(script), ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
    const parts = out.split("\n");
    out = parts.pop() ?? "";
    lines.push(...parts);
    changed();
  });
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString();
      process.stderr.write(chunk);
      if (err.includes("ready")) resolve(child);
    });
    child.once("exit", (code) => reject(new Error(`${script} ${args.join(" ")} exited early (${code})`)));
  });
}

function until(done: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), GUARD_MS);
    changed = () => {
      if (!done()) return;
      clearTimeout(timer);
      resolve();
    };
    changed();
  });
}

const count = (re: RegExp) => lines.filter((l) => re.test(l)).length;
const services: ChildProcess[] = [];
try {
  services.push(await start("./service.ts", "billing"));
  services.push(await start("./service.ts", "shipping"));
  services.push(await start("./service.ts", "shipping"));
  const api = spawn(process.execPath, ["--import", "tsx", here("./api.ts")], { env, stdio: "inherit" });
  const [code] = await once(api, "exit");
  if (code !== 0) throw new Error(`the API exited with ${code}`);
  await until(
    () => count(/^billing .* charged /) >= orders && count(/^shipping /) >= orders * 2,
    "every event",
  );
} finally {
  for (const s of services) s.kill("SIGTERM");
  await Promise.all(services.map((s) => (s.exitCode !== null ? undefined : once(s, "exit"))));
  const t = transportFromUrl(url, { namespace });
  await t.connect();
  const log = t.eventLog?.() as { deleteStreams?: () => Promise<void>; deleteAll?: () => Promise<void> };
  await (log.deleteStreams?.() ?? log.deleteAll?.());
  await t.close();
}
const billed = new Set(lines.filter((l) => l.startsWith("billing")).map((l) => l.split(" ")[3]));
const shippingPids = [...new Set(lines.filter((l) => l.startsWith("shipping")).map((l) => l.split(" ")[1]))];
console.log(`billing: ${billed.size}/${orders} orders charged (${count(/^billing /)} deliveries)`);
console.log(
  `shipping: ${count(/^shipping /)}/${orders * 2} events, shared by ${shippingPids.length} processes:`,
);
for (const pid of shippingPids) console.log(`  shipping ${pid}: ${count(new RegExp(`^shipping ${pid} `))}`);
