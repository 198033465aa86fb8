/**
 * The task event publisher sends one message per destination and turn: a task's client inbox
 * when the task names one, else the queue's subject.
 */
import { describe, expect, it } from "vitest";
import { decodeTaskEvents } from "../../src/codec.js";
import { TaskEventPublisher } from "../../src/event-publisher.js";
import { InMemoryTransport } from "../../transports/memory/memory.transport.js";
import type { Bytes, PublishOptions, Transport } from "../../transports/transport.js";
import { overriding } from "../helpers/tap.js";

interface Sent {
  subject: string;
  inbox: string | undefined;
  taskIds: string[];
}

/** An in-memory transport whose publishes are recorded. */
function recordingTransport(): { transport: Transport; sent: Sent[] } {
  const sent: Sent[] = [];
  const inner: Transport = new InMemoryTransport();
  const transport = overriding(inner, {
    publish: (subject: string, body: Bytes, options?: PublishOptions) => {
      sent.push({ subject, inbox: options?.inbox, taskIds: decodeTaskEvents(body).map((e) => e.taskId) });
      return inner.publish(subject, body, options);
    },
  });
  return { transport, sent };
}

const completed = (taskId: string) => ({ kind: "completed" as const, taskId, at: 1, result: 1 });

describe("task event publisher", () => {
  it("batches per inbox and per subject, never mixing the two", async () => {
    const { transport, sent } = recordingTransport();
    await transport.connect();
    const publisher = new TaskEventPublisher(transport);
    const done = [
      publisher.queue({ queue: "a", replyTo: "client-1" }, completed("t1")).done,
      publisher.queue({ queue: "a", replyTo: "client-1" }, completed("t2")).done,
      publisher.queue({ queue: "a", replyTo: "client-2" }, completed("t3")).done,
      publisher.queue({ queue: "b" }, completed("t4")).done,
      // A replyTo off the wire that looks like a subject stays out of that subject's batch.
      publisher.queue({ queue: "a", replyTo: "ev.b.task" }, completed("t5")).done,
    ];
    await Promise.all(done);
    expect(sent).toEqual([
      { subject: "ev.a.task", inbox: "client-1", taskIds: ["t1", "t2"] },
      { subject: "ev.a.task", inbox: "client-2", taskIds: ["t3"] },
      { subject: "ev.b.task", inbox: undefined, taskIds: ["t4"] },
      { subject: "ev.a.task", inbox: "ev.b.task", taskIds: ["t5"] },
    ]);
    await transport.close();
  });
});
