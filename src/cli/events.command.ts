/**
 * `fastagentic events publish TYPE [JSON]`, `fastagentic events tail PATTERN [--group G] [--from all]`
 * and `fastagentic events groups`: the event bus from a shell. `tail` prints one JSON line per
 * event until SIGINT/SIGTERM (or `--max N` events); without `--group` it follows live events only
 * (a non-durable subscription), or, with `--from`, replays through a temporary group deleted on exit.
 */
import type { EventStart } from "../../transports/event-log.js";
import { ConfigError } from "../errors.js";
import { EventBus } from "../events/event-bus.js";
import type { BusEvent } from "../events/event-codec.js";
import { newId } from "../ids.js";
import { cliLogger, jsonArgument, type TransportFlags, transportOf } from "./shared-options.js";

export interface PublishFlags extends TransportFlags {
  key?: string;
  id?: string;
  fast?: boolean;
}

export interface TailFlags extends TransportFlags {
  group?: string;
  from?: string;
  max?: number;
}

export async function eventsPublishCommand(
  type: string,
  json: string | undefined,
  flags: PublishFlags,
): Promise<number> {
  const data = jsonArgument(json, "event data", '{"orderId": "o-1"}');
  const transport = transportOf(flags, "fastagentic events publish");
  const bus = new EventBus({ transport, logger: cliLogger() });
  try {
    const published = await bus.publish(type, data, {
      ...(flags.key === undefined ? {} : { key: flags.key }),
      ...(flags.id === undefined ? {} : { id: flags.id }),
      ...(flags.fast ? { durable: false } : {}),
    });
    console.log(JSON.stringify({ id: published.id, type, time: published.time }));
    return 0;
  } finally {
    await bus.close();
    await transport.close();
  }
}

export async function eventsTailCommand(pattern: string, flags: TailFlags): Promise<number> {
  const from = parseFrom(flags.from);
  const transport = transportOf(flags, "fastagentic events tail");
  const bus = new EventBus({ transport, logger: cliLogger() });
  const temporary =
    flags.group === undefined && from !== undefined
      ? newId("tail").replace(/[^A-Za-z0-9_-]/g, "-")
      : undefined;
  const group = flags.group ?? temporary;
  let seen = 0;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  const onSignal = () => stop();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await bus.subscribe(
      pattern,
      (event: BusEvent) => {
        if (flags.max !== undefined && seen >= flags.max) return;
        seen++;
        process.stdout.write(`${JSON.stringify(event)}\n`);
        if (flags.max !== undefined && seen >= flags.max) stop();
      },
      {
        ...(group === undefined ? { durable: false } : { group }),
        ...(from === undefined ? {} : { from }),
        concurrency: 1,
        ordered: false,
      },
    );
    console.error(
      `tailing "${pattern}"${group === undefined ? " (live)" : ` as group "${group}"`}; Ctrl-C stops`,
    );
    await stopped;
    return 0;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await bus.close();
    if (temporary !== undefined)
      await new EventBus({ transport, logger: cliLogger() }).deleteGroup(temporary, pattern).catch(() => {});
    await transport.close();
  }
}

export async function eventsGroupsCommand(flags: TransportFlags): Promise<number> {
  const transport = transportOf(flags, "fastagentic events groups");
  const bus = new EventBus({ transport, logger: cliLogger() });
  try {
    for (const g of await bus.groups()) console.log(JSON.stringify(g));
    return 0;
  } finally {
    await bus.close();
    await transport.close();
  }
}

/** `--from`: all, new, an ISO time (or epoch ms), or a sequence number prefixed with "#" or given as seq:N. */
export function parseFrom(value: string | undefined): EventStart | undefined {
  if (value === undefined) return undefined;
  if (value === "all" || value === "new") return value;
  const seq = /^(?:#|seq:)(\d+)$/.exec(value);
  if (seq) return { sequence: Number(seq[1]) };
  const time = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (Number.isFinite(time)) return { time };
  throw new ConfigError(
    `--from must be all, new, a time (ISO 8601 or epoch ms) or a sequence ("#42"), got "${value}".`,
  );
}
