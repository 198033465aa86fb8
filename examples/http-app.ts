/**
 * The seed's "Integration with App": a web service in front of a coordinator.
 *
 *   npx tsx examples/http-app.ts                                         # in-memory transport
 *   FASTAGENTIC_TRANSPORT=nats://127.0.0.1:4222 npx tsx examples/http-app.ts
 *   FASTAGENTIC_TRANSPORT=amqp://guest:guest@127.0.0.1:5672 npx tsx examples/http-app.ts
 *
 * PORT (default 8080; 0 picks a free one) and HOST (default 127.0.0.1) set where it listens.
 * APP_TOKEN, when set, guards every route (Bearer token, or the password of Basic in a browser).
 * The live dashboard is at /dashboard/.
 * Ctrl+C (SIGINT) or SIGTERM drains: running tasks finish, then the process exits 0.
 */
import { App, bearerToken, Coordinator, transportFromUrl } from "fastagentic";

/** Stands in for the agent logic of the seed's `run_agent`. */
async function runAgent(data: { question?: string }) {
  return { answer: `You asked: ${data.question ?? "nothing"}`, model: "stub" };
}

const transport = transportFromUrl(process.env["FASTAGENTIC_TRANSPORT"]);
const token = process.env["APP_TOKEN"];
const app = new App({ title: "Distributed Agent", ...(token ? { auth: bearerToken(token) } : {}) });
const coordinator = new Coordinator({ config: { minWorkers: 4 }, transport });

coordinator.handler("agent_task", async (data: { question?: string }) => runAgent(data));

app.onStartup(() => coordinator.start());
app.onShutdown(async () => {
  await coordinator.stop({ graceful: true });
  await transport.close();
  console.log("Distributed Agent stopped");
});

app.agentEndpoint({ path: "/run" }, async (request) => coordinator.submit("agent_task", request.data));

// The ready REST surface: POST /tasks, GET/DELETE /tasks/:id, /workers, /stats, /health, /metrics.
app.mountCoordinator(coordinator, { prefix: "/" });
// The live dashboard (workers, queues, charts, tasks, dead letters), behind the same auth.
app.mountDashboard(coordinator, { path: "/dashboard" });
app.enableShutdownSignals();

const url = await app.listen({
  port: Number(process.env["PORT"] ?? 8080),
  host: process.env["HOST"] ?? "127.0.0.1",
});
console.log(`Distributed Agent listening on ${url} (transport: ${transport.kind})`);
console.log(
  `Try: curl -s -X POST ${url}/run -H 'content-type: application/json' -d '{"question":"what is an actor?"}'`,
);
console.log(
  `     curl -s -X POST ${url}/tasks -H 'content-type: application/json' -d '{"type":"agent_task","data":{},"wait":true}'`,
);
console.log("Press Ctrl+C to stop.");
