/**
 * Class-decorator actors: an @Actor class whose @Handler methods handle task types, built with its
 * dependencies (as a DI container would) and registered on a coordinator.
 *
 *   npx tsx examples/decorators.ts
 *
 * Works with standard decorators (this repository's tsconfig) and with `experimentalDecorators`.
 */
import { Actor, Coordinator, Handler, type TaskContext, TaskPriority } from "fastagentic";

/** A dependency the actor is constructed with. */
class Tokenizer {
  split(text: string): string[] {
    return text.split(/\s+/).filter(Boolean);
  }
}

@Actor({ maxConcurrentTasks: 4, timeoutMs: 10_000, retries: 1 })
class Documents {
  private processed = 0;

  constructor(private readonly tokenizer: Tokenizer) {}

  @Handler("process_document", { priority: TaskPriority.HIGH })
  async process(data: { page_count: number }, ctx: TaskContext) {
    this.processed++;
    return { pages: data.page_count, attempt: ctx.attempt, processedSoFar: this.processed };
  }

  @Handler("count_words", { timeoutMs: 2_000 })
  countWords(data: { text: string }) {
    return { words: this.tokenizer.split(data.text).length };
  }

  onActorStart() {
    console.log("Documents actor started");
  }

  onActorStop() {
    console.log("Documents actor stopped");
  }
}

const coordinator = new Coordinator({ config: { minWorkers: 2, autoScale: false } });
coordinator.register(new Documents(new Tokenizer()));
await coordinator.start();

console.log("process_document:", await coordinator.submit("process_document", { page_count: 12 }));
console.log("count_words:", await coordinator.submit("count_words", { text: "the quick brown fox" }));

// Handler options are per-type submit defaults; submit options still win.
const task = await coordinator.submitAsync("count_words", { text: "a b c" });
console.log(`defaults: timeoutMs=${task.timeoutMs} retries=${task.retries} priority=${task.priority}`);
const results = await Promise.all(
  [3, 5, 8].map((pages) => coordinator.submit("process_document", { page_count: pages })),
);
console.log("batch:", results.map((r) => (r as { pages: number }).pages).join(", "));
await coordinator.waitFor(task.id);

await coordinator.stop({ graceful: true });
console.log("done");
