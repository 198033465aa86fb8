#!/usr/bin/env node
/** The `fastagentic` command line: worker, submit, status. */
import { Command, CommanderError } from "commander";
import { ConfigError, FastAgenticError, ValidationError } from "../errors.js";
import { LIMITS, MAX_DURATION_MS } from "../limits.js";
import { type DeadLetterAction, deadLettersCommand } from "./dead-letters.command.js";
import { eventsGroupsCommand, eventsPublishCommand, eventsTailCommand } from "./events.command.js";
import { intOption, jsonObjectOption, listOption, priorityOption, restartOption } from "./shared-options.js";
import { statusCommand } from "./status.command.js";
import { submitCommand } from "./submit.command.js";
import { workerCommand } from "./worker.command.js";

const program = new Command("fastagentic")
  .description("Actor-model task workers over memory://, nats:// or amqp:// transports")
  .showHelpAfterError()
  // Usage errors (no or unknown command, unknown flag, missing argument) exit 2, not commander's 1.
  .exitOverride();

/** Worker processes one supervisor forks at most (`--processes`). */
const MAX_PROCESSES = 1024;

const transportHelp =
  "broker URL, nats://… or amqp://… (default: $FASTAGENTIC_TRANSPORT); memory:// is refused: " +
  "it does not reach other processes";
const optionsHelp =
  "adapter options as JSON, e.g. '{\"ackWaitMs\":5000}' (NATS), '{\"heartbeatSeconds\":5}' (AMQP)";

program
  .command("worker")
  .description("run a pool of workers for the handlers in a module")
  .option("--transport <url>", transportHelp)
  .option(
    "--handlers <module>",
    "module whose default export maps task types to handlers, or @Actor class(es) and entity types",
  )
  .option("--concurrency <n>", "tasks at once per worker", intOption("--concurrency", 1, LIMITS.concurrency))
  .option(
    "--tags <a,b>",
    "tags of these workers (tasks with tags go to workers carrying all of them)",
    listOption,
  )
  .option("--min-workers <n>", "workers per process at least", intOption("--min-workers", 0, LIMITS.workers))
  .option("--max-workers <n>", "workers per process at most", intOption("--max-workers", 1, LIMITS.workers))
  .option(
    "--processes <n>",
    "fork N worker processes under a supervisor",
    intOption("--processes", 1, MAX_PROCESSES),
  )
  .option(
    "--max-restarts <n>",
    "restart intensity: restarts allowed…",
    intOption("--max-restarts", 0, LIMITS.restarts),
  )
  .option(
    "--restart-period-ms <ms>",
    "…within this window",
    intOption("--restart-period-ms", 1, MAX_DURATION_MS),
  )
  .option(
    "--restart <type>",
    "with --processes: transient (default: a process that exits 0 after a drain is not replaced) or permanent",
    restartOption,
  )
  .option("--namespace <ns>", "broker namespace (prefix of every queue and subject)")
  .option("--transport-options <json>", optionsHelp, jsonObjectOption)
  .option("--queue <name>", "queue name (default: default)")
  .option(
    "--heartbeat-ms <ms>",
    "heartbeat interval of each worker",
    intOption("--heartbeat-ms", 1, MAX_DURATION_MS),
  )
  .option(
    "--stall-timeout-ms <ms>",
    "a worker whose own heartbeat comes this late (frozen process) leaves and is replaced",
    intOption("--stall-timeout-ms", 1, MAX_DURATION_MS),
  )
  .option(
    "--state-store <url>",
    "where entities keep their state: postgres://… or memory:// (default: the transport's; " +
      "$FASTAGENTIC_STATE_STORE on amqp://)",
  )
  .option(
    "--entity-failover-ms <ms>",
    "a worker silent this long loses its entity partitions to the others (default 10000)",
    intOption("--entity-failover-ms", 100, MAX_DURATION_MS),
  )
  .action(async (flags) => exit(await workerCommand(flags)));

program
  .command("submit")
  .description("submit one task; prints its id, or its result with --wait")
  .argument("<type>", "task type")
  .argument("[json]", "task data as JSON")
  .option("--transport <url>", transportHelp)
  .option("--priority <p>", "low | normal | high | critical", priorityOption)
  .option("--wait", "wait for the result and print it")
  .option("--timeout-ms <ms>", "task timeout", intOption("--timeout-ms", 1, MAX_DURATION_MS))
  .option(
    "--wait-timeout-ms <ms>",
    "give up waiting after this long",
    intOption("--wait-timeout-ms", 1, MAX_DURATION_MS),
  )
  .option("--retries <n>", "retries after a failed attempt", intOption("--retries", 0, LIMITS.retries))
  .option("--tags <a,b>", "only workers carrying these tags run it", listOption)
  .option("--namespace <ns>", "broker namespace")
  .option("--transport-options <json>", optionsHelp, jsonObjectOption)
  .option("--queue <name>", "queue name (default: default)")
  .action(async (type: string, json: string | undefined, flags) =>
    exit(await submitCommand(type, json, flags)),
  );

program
  .command("status")
  .description("list the workers, their queue depths and throughput")
  .option("--transport <url>", transportHelp)
  .option("--wait-ms <ms>", "how long to collect heartbeats", intOption("--wait-ms", 1, MAX_DURATION_MS))
  .option("--json", "print JSON")
  .option("--namespace <ns>", "broker namespace")
  .option("--transport-options <json>", optionsHelp, jsonObjectOption)
  .option("--queue <name>", "queue name (default: default)")
  .action(async (flags) => exit(await statusCommand(flags)));

const events = program.command("events").description("publish, follow and list cluster-wide events");
events
  .command("publish")
  .description("publish one event; prints its id")
  .argument("<type>", "event type, e.g. order.created")
  .argument("[json]", "event data as JSON")
  .option("--key <key>", "ordering key")
  .option("--id <id>", "event id (a re-send with the same id is stored once)")
  .option("--fast", "durable: false (not stored: live subscribers only)")
  .option("--transport <url>", transportHelp)
  .option("--namespace <ns>", "broker namespace")
  .option("--transport-options <json>", optionsHelp, jsonObjectOption)
  .action(async (type: string, json: string | undefined, flags) =>
    exit(await eventsPublishCommand(type, json, flags)),
  );
events
  .command("tail")
  .description("print matching events as JSON lines until Ctrl-C")
  .argument("<pattern>", 'event pattern: "*" one part, a final ">" the rest')
  .option("--group <g>", "follow as this durable group (default: live events only)")
  .option("--from <where>", "all | new | an ISO time | #sequence (a new group starts there)")
  .option("--max <n>", "stop after N events", intOption("--max", 1, 1_000_000_000))
  .option("--transport <url>", transportHelp)
  .option("--namespace <ns>", "broker namespace")
  .option("--transport-options <json>", optionsHelp, jsonObjectOption)
  .action(async (pattern: string, flags) => exit(await eventsTailCommand(pattern, flags)));
events
  .command("groups")
  .description("list the durable event groups with their lag, as JSON lines")
  .option("--transport <url>", transportHelp)
  .option("--namespace <ns>", "broker namespace")
  .option("--transport-options <json>", optionsHelp, jsonObjectOption)
  .action(async (flags) => exit(await eventsGroupsCommand(flags)));
program
  .command("dead-letters")
  .description("list, show, retry, delete or purge the dead letters of a queue")
  .argument("<action>", "list | show | retry | delete | purge")
  .argument("[ids...]", "letter ids (show, retry, delete), as list prints them")
  .option("--transport <url>", transportHelp)
  .option("--type <type>", "only letters of this task type")
  .option("--limit <n>", "letters per page (list), 1-500", intOption("--limit", 1, 500))
  .option("--cursor <c>", "continue a list where the last page ended")
  .option("--all", "retry: every letter (of --type)")
  .option("--yes", "purge: yes, delete them for good")
  .option("--json", "print JSON")
  .option(
    "--wait-ms <ms>",
    "how long to collect worker heartbeats (to find queues)",
    intOption("--wait-ms", 0, MAX_DURATION_MS),
  )
  .option("--namespace <ns>", "broker namespace")
  .option("--transport-options <json>", optionsHelp, jsonObjectOption)
  .option("--queue <name>", "queue name (default: default)")
  .action(async (action: string, ids: string[], flags) => {
    const actions = ["list", "show", "retry", "delete", "purge"];
    if (!actions.includes(action)) {
      throw new ConfigError(`dead-letters: unknown action "${action}"; use ${actions.join(", ")}.`);
    }
    exit(await deadLettersCommand(action as DeadLetterAction, ids, flags));
  });

function exit(code: number): void {
  process.exitCode = code;
  // Open handles (timers of a closed client) must not keep a finished command alive.
  setTimeout(() => process.exit(code), 50).unref();
}

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    // Commander has printed its message (and the help); --help and --version exit 0.
    process.exit(error.exitCode === 0 ? 0 : 2);
  }
  if (error instanceof FastAgenticError) {
    console.error(`fastagentic: ${error.message}`);
    process.exit(error instanceof ConfigError || error instanceof ValidationError ? 2 : 1);
  }
  console.error(error);
  process.exit(1);
});
