/**
 * The panels the dashboard adds by itself for capabilities the coordinator's transport has:
 * event groups and their lag (the event log, transports/event-log.ts). Entities plug in the same
 * way (a `lookup` by id) once they are on the transport.
 */
import type { Coordinator } from "../../coordinator.js";
import type { DashboardProvider } from "./dashboard-provider.js";

export function builtinProviders(coordinator: Coordinator): DashboardProvider[] {
  const providers: DashboardProvider[] = [];
  const transport = coordinator.transport;
  if (typeof transport.eventLog === "function") {
    providers.push({
      name: "event-groups",
      title: "Event groups",
      summary: async () => {
        const log = transport.eventLog?.();
        if (!log) return [];
        return (await log.groups()).slice(0, 200).map((g) => ({
          group: g.group,
          pattern: g.pattern,
          "lag (pending)": g.pending ?? "?",
          "in flight": g.inFlight ?? "?",
          "dead letters": g.deadLetters ?? "?",
          ordered: g.ordered,
          durable: g.durable,
        }));
      },
    });
  }
  return providers;
}
