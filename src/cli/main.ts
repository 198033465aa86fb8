#!/usr/bin/env node
/** The `fastagentic` command line: worker, submit, status. */
import { Command } from "commander";
import { FastAgenticError } from "../errors.js";
import { intOption, jsonObjectOption, listOption, priorityOption, restartOption } from "./shared-options.js";
import { statusCommand } from "./status.command.js";
import { submitCommand } from "./submit.command.js";
import { workerCommand } from "./worker.command.js";

const program = new Command("fastagentic")
  .description("Actor-model task workers over memory://, nats:// or amqp:// transports")
  .showHelpAfterError();

const transportHelp = "transport URL (default: $FASTAGENTIC_TRANSPORT, then memory://)";
const optionsHelp =
  "adapter options as JSON, e.g. '{\"ackWaitMs\":5000}' (NATS), '{\"heartbeatSeconds\":5}' (AMQP)";

program
  .command("worker")
  .description("run a pool of workers for the handlers in a module")
  .option("--transport <url>", transportHelp)
  .option(
    "--handlers <module>",
    "module whose default export maps task types to handlers, or @Actor class(es)",
  )
  .option("--concurrency <n>", "tasks at once per worker", intOption("--concurrency", 1))
  .option(
    "--tags <a,b>",
    "tags of these workers (tasks with tags go to workers carrying all of them)",
    listOption,
  )
  .option("--min-workers <n>", "workers per process at least", intOption("--min-workers", 0))
  .option("--max-workers <n>", "workers per process at most", intOption("--max-workers", 1))
  .option("--processes <n>", "fork N worker processes under a supervisor", intOption("--processes", 1))
  .option("--max-restarts <n>", "restart intensity: restarts allowed…", intOption("--max-restarts", 0))
  .option("--restart-period-ms <ms>", "…within this window", intOption("--restart-period-ms", 1))
  .option(
    "--restart <type>",
    "with --processes: transient (default: a process that exits 0 after a drain is not replaced) or permanent",
    restartOption,
  )
  .option("--namespace <ns>", "broker namespace (prefix of every queue and subject)")
  .option("--transport-options <json>", optionsHelp, jsonObjectOption)
  .option("--queue <name>", "queue name (default: default)")
  .option("--heartbeat-ms <ms>", "heartbeat interval of each worker", intOption("--heartbeat-ms", 1))
  .option(
    "--stall-timeout-ms <ms>",
    "a worker whose own heartbeat comes this late (frozen process) leaves and is replaced",
    intOption("--stall-timeout-ms", 1),
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
  .option("--timeout-ms <ms>", "task timeout", intOption("--timeout-ms", 1))
  .option("--wait-timeout-ms <ms>", "give up waiting after this long", intOption("--wait-timeout-ms", 1))
  .option("--retries <n>", "retries after a failed attempt", intOption("--retries", 0))
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
  .option("--wait-ms <ms>", "how long to collect heartbeats", intOption("--wait-ms", 1))
  .option("--json", "print JSON")
  .option("--namespace <ns>", "broker namespace")
  .option("--transport-options <json>", optionsHelp, jsonObjectOption)
  .option("--queue <name>", "queue name (default: default)")
  .action(async (flags) => exit(await statusCommand(flags)));

function exit(code: number): void {
  process.exitCode = code;
  // Open handles (timers of a closed client) must not keep a finished command alive.
  setTimeout(() => process.exit(code), 50).unref();
}

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof FastAgenticError) {
    console.error(`fastagentic: ${error.message}`);
    process.exit(error.code === "FA_CONFIG" || error.code === "FA_INVALID_NAME" ? 2 : 1);
  }
  console.error(error);
  process.exit(1);
});
