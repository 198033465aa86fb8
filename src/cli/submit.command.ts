/** `fastagentic submit TYPE JSON`: enqueue one task; with --wait, print its result. */
import { TaskQueue } from "../task-queue.js";
import type { TaskPriority } from "../types.js";
import { jsonArgument, type TransportFlags, transportOf } from "./shared-options.js";

export interface SubmitFlags extends TransportFlags {
  priority?: TaskPriority;
  wait?: boolean;
  timeoutMs?: number;
  waitTimeoutMs?: number;
  retries?: number;
  tags?: string[];
}

export async function submitCommand(
  type: string,
  json: string | undefined,
  flags: SubmitFlags,
): Promise<number> {
  const data = jsonArgument(json, "task data", '{"x": 21}');
  const transport = transportOf(flags, "fastagentic submit");
  const queue = new TaskQueue({ name: flags.queue ?? "default", transport });
  try {
    const task = await queue.enqueue({
      taskType: type,
      data,
      ...(flags.priority === undefined ? {} : { priority: flags.priority }),
      ...(flags.timeoutMs === undefined ? {} : { timeoutMs: flags.timeoutMs }),
      ...(flags.retries === undefined ? {} : { retries: flags.retries }),
      ...(flags.tags === undefined ? {} : { tags: flags.tags }),
    });
    if (!flags.wait) {
      console.log(JSON.stringify({ id: task.id, status: task.status }));
      return 0;
    }
    const result = await queue.waitForTask(
      task.id,
      flags.waitTimeoutMs === undefined ? {} : { timeoutMs: flags.waitTimeoutMs },
    );
    console.log(JSON.stringify(result));
    return result.status === "completed" ? 0 : 1;
  } finally {
    await queue.close();
    await transport.close();
  }
}
