/**
 * A W3C traceparent set at submit travels with the task to the handler: through the active
 * OpenTelemetry context when an SDK is installed (here: the W3C propagator and an async-hooks
 * context manager), or as explicit headers.
 */

import { context, ROOT_CONTEXT, type SpanContext, TraceFlags, trace } from "@opentelemetry/api";
import { Coordinator, silentLogger, type TaskContext } from "fastagentic";
import { describe, expect, it } from "vitest";
import { useW3CTracing } from "../helpers/otel.js";

const parent: SpanContext = {
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  spanId: "00f067aa0ba902b7",
  traceFlags: TraceFlags.SAMPLED,
  isRemote: false,
};

describe("trace context", () => {
  useW3CTracing();

  it("carries the submitter's active span context into the handler's context", async () => {
    const coordinator = new Coordinator({
      logger: silentLogger,
      config: { minWorkers: 1, autoScale: false },
    });
    coordinator.handler("traced", async (_: unknown, ctx: TaskContext) => ({
      header: ctx.headers["traceparent"],
      active: trace.getSpanContext(context.active()),
    }));
    await coordinator.start();
    const result = (await context.with(trace.setSpanContext(ROOT_CONTEXT, parent), () =>
      coordinator.submit("traced", {}),
    )) as { header: string; active: SpanContext };
    expect(result.header).toBe(`00-${parent.traceId}-${parent.spanId}-01`);
    expect(result.active).toMatchObject({ traceId: parent.traceId, spanId: parent.spanId, isRemote: true });
    await coordinator.stop();
  });

  it("takes an explicit traceparent header as given", async () => {
    const coordinator = new Coordinator({
      logger: silentLogger,
      config: { minWorkers: 1, autoScale: false },
    });
    coordinator.handler("traced", async () => trace.getSpanContext(context.active())?.traceId);
    await coordinator.start();
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    expect(await coordinator.submit("traced", {}, { headers: { traceparent } })).toBe(
      "0af7651916cd43dd8448eb211c80319c",
    );
    await coordinator.stop();
  });
});
