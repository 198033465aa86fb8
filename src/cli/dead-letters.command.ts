/**
 * `fastagentic dead-letters list|show|retry|delete|purge`: the dead letters of a queue on a
 * broker. The work queues looked at are those the workers heartbeating on the transport serve
 * (collected for --wait-ms), those the broker can list (NATS), and the untagged queue of --type.
 */
import Table from "cli-table3";
import { encode } from "../codec.js";
import { DeadLetterApi, type DeadLetterInfo } from "../dead-letters/dead-letter-api.js";
import { ConfigError } from "../errors.js";
import { assertTaskType, queuesServedBy, subjects, workQueueName } from "../names.js";
import { TransportWorkerRegistry } from "../registry.js";
import { type TransportFlags, transportOf } from "./shared-options.js";

export interface DeadLetterFlags extends TransportFlags {
  type?: string;
  limit?: number;
  cursor?: string;
  all?: boolean;
  yes?: boolean;
  json?: boolean;
  waitMs?: number;
}

export type DeadLetterAction = "list" | "show" | "retry" | "delete" | "purge";

export async function deadLettersCommand(
  action: DeadLetterAction,
  ids: string[],
  flags: DeadLetterFlags,
): Promise<number> {
  if (flags.type !== undefined) assertTaskType(flags.type);
  if ((action === "show" || action === "delete") && ids.length === 0) {
    throw new ConfigError(
      `dead-letters ${action} needs the id of a letter (as "dead-letters list" prints it).`,
    );
  }
  if (action === "retry" && ids.length === 0 && !flags.all) {
    throw new ConfigError(
      "dead-letters retry needs letter ids, or --all (with --type to retry one type only).",
    );
  }
  if (action === "purge" && !flags.yes) {
    throw new ConfigError("dead-letters purge deletes letters for good: add --yes to go ahead.");
  }
  const transport = transportOf(flags, `fastagentic dead-letters ${action}`);
  const queue = flags.queue ?? "default";
  const registry = new TransportWorkerRegistry(transport);
  try {
    await registry.start();
    if (action === "list" || action === "purge" || flags.all) {
      await transport.publish(subjects.control, encode({ v: 1, kind: "ping" }, transport.maxPayloadBytes));
      await new Promise((r) => setTimeout(r, flags.waitMs ?? 1000));
    }
    const api = new DeadLetterApi({
      transport,
      queue,
      knownQueues: () => {
        const names = new Set<string>();
        for (const w of registry.list()) for (const q of queuesServedBy(queue, w.types, w.tags)) names.add(q);
        if (flags.type !== undefined) names.add(workQueueName(queue, flags.type, []));
        return names;
      },
    });
    return await run(api, action, ids, flags);
  } finally {
    await registry.stop().catch(() => {});
    await transport.close();
  }
}

async function run(api: DeadLetterApi, action: DeadLetterAction, ids: string[], flags: DeadLetterFlags) {
  const type = flags.type === undefined ? {} : { type: flags.type };
  switch (action) {
    case "list": {
      const page = await api.list({
        ...type,
        ...(flags.limit === undefined ? {} : { limit: flags.limit }),
        ...(flags.cursor === undefined ? {} : { cursor: flags.cursor }),
      });
      if (flags.json) console.log(JSON.stringify(page, null, 2));
      else print(page.letters, page.next);
      return 0;
    }
    case "show": {
      const letter = await api.get(ids[0] as string);
      if (!letter) {
        console.error(`fastagentic: no dead letter ${ids[0]} (any more).`);
        return 1;
      }
      console.log(JSON.stringify(letter, null, 2));
      return 0;
    }
    case "retry": {
      if (flags.all) {
        const { retried } = await api.retryAll(type);
        console.log(flags.json ? JSON.stringify({ retried }) : `retried ${retried} dead letter(s)`);
        return 0;
      }
      let failed = 0;
      for (const id of ids) {
        try {
          const { taskId } = await api.retry(id);
          console.log(
            flags.json
              ? JSON.stringify({ id, retried: true, taskId })
              : `retried ${id} (task ${taskId ?? "?"})`,
          );
        } catch (error) {
          failed++;
          console.error(`fastagentic: ${(error as Error).message}`);
        }
      }
      return failed === 0 ? 0 : 1;
    }
    case "delete":
      for (const id of ids) await api.delete(id);
      console.log(
        flags.json ? JSON.stringify({ deleted: ids.length }) : `deleted ${ids.length} dead letter(s)`,
      );
      return 0;
    case "purge": {
      const { purged } = await api.purge(type);
      console.log(flags.json ? JSON.stringify({ purged }) : `purged ${purged} dead letter(s)`);
      return 0;
    }
  }
}

function print(letters: DeadLetterInfo[], next: string | undefined): void {
  if (letters.length === 0) {
    console.log("no dead letters");
    return;
  }
  const table = new Table({ head: ["id", "task", "type", "attempts", "died", "error"] });
  for (const l of letters) {
    const error = l.error.length > 60 ? `${l.error.slice(0, 59)}…` : l.error;
    const died = l.deadAt === undefined ? "" : new Date(l.deadAt).toISOString();
    table.push([l.id, l.taskId ?? "(not a task)", l.type ?? "", l.attempts ?? "", died, error]);
  }
  console.log(table.toString());
  if (next !== undefined) console.log(`more: --cursor ${next}`);
}
