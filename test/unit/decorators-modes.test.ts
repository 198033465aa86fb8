/**
 * @Actor / @Handler under both decorator modes: the fixtures in test/fixtures/decorators are compiled
 * with the installed TypeScript, once with standard (TC39) decorators and once with
 * experimentalDecorators + emitDecoratorMetadata, then registered on real coordinators and workers.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, Coordinator, TaskPriority, Worker } from "fastagentic";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type CompiledFixtures, compileFixtures, type DecoratorMode } from "../helpers/compile-fixtures.js";

type Ctor = new (...args: unknown[]) => object;

interface DocumentsInstance {
  events: string[];
  helper(): string;
}

const modes: DecoratorMode[] = ["standard", "legacy"];

describe.each(modes)("decorators compiled with %s decorators", (mode) => {
  let fixtures: CompiledFixtures;
  let documents: Record<string, Ctor> & { default: Ctor[] };
  let misuse: Record<string, Ctor>;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    fixtures = compileFixtures(mode);
    documents = await fixtures.load("documents.actor");
    misuse = await fixtures.load("misuse.actors");
  }, 60_000);

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  const coordinator = (workerConfig?: ConstructorParameters<typeof Coordinator>[0]) => {
    const c = new Coordinator({ config: { minWorkers: 1, autoScale: false }, ...workerConfig });
    stops.push(() => c.stop({ graceful: true }));
    return c;
  };

  it("type-checks the fixtures: valid ones cleanly, misplaced decorators as type errors", () => {
    expect(fixtures.diagnostics).toEqual([]);
    const emitted = readFileSync(join(fixtures.outDir, "documents.actor.js"), "utf8");
    if (mode === "standard") {
      expect(emitted).toContain("__esDecorate");
    } else {
      expect(emitted).toContain("__decorate(");
      expect(emitted).toContain('__metadata("design:paramtypes"');
    }
  });

  it("runs handlers bound to the registered instance (constructed by the caller, as a DI container would)", async () => {
    const { Documents, PageCounter } = documents;
    const c = coordinator();
    const actor = new Documents!(new PageCounter!(10));
    expect(c.register(actor)).toBe(c);
    await c.start();
    expect(await c.submit("process_document", { page_count: 3 })).toEqual({
      pages: 30,
      type: "process_document",
    });
    expect(await c.submit("count_words", { text: "one two  three" })).toEqual({ words: 3 });
    expect((await c.getWorkers())[0]?.types.sort()).toEqual(["count_words", "process_document"]);
  });

  it("turns actor and handler options into per-type submit defaults (submit options still win)", async () => {
    const c = coordinator();
    c.register(new documents.Documents!());
    await c.start();
    const processed = await c.submitAsync("process_document", { page_count: 1 });
    expect(processed).toMatchObject({ priority: TaskPriority.HIGH, timeoutMs: 5000, retries: 1 });
    const counted = await c.submitAsync("count_words", { text: "a" });
    expect(counted).toMatchObject({ priority: TaskPriority.NORMAL, timeoutMs: 1000, retries: 0 });
    const overridden = await c.submitAsync("count_words", { text: "a" }, { timeoutMs: 42, retries: 3 });
    expect(overridden).toMatchObject({ timeoutMs: 42, retries: 3 });
    await Promise.all([processed, counted, overridden].map((t) => c.waitFor(t.id)));
  });

  it("applies @Actor tags and maxConcurrentTasks to a host that did not set them", async () => {
    const c = coordinator();
    c.register(new documents.Documents!());
    await c.start();
    const [info] = await c.getWorkers();
    expect(info).toMatchObject({ tags: ["gpu"], maxConcurrentTasks: 3 });
    expect(await c.submit("count_words", { text: "x y" }, { tags: ["gpu"] })).toEqual({ words: 2 });
  });

  it("keeps the host's explicit maxConcurrentTasks and rejects explicit tags lacking the actor's", async () => {
    const w = new Worker({ config: { maxConcurrentTasks: 7, tags: ["gpu", "fast"] } });
    stops.push(() => w.stop());
    w.register(new documents.Documents!());
    expect(w.info).toMatchObject({ maxConcurrentTasks: 7, tags: ["fast", "gpu"] });
    const cpu = new Worker({ config: { tags: ["cpu"] } });
    expect(() => cpu.register(new documents.Documents!())).toThrow(ConfigError);
    expect(() => cpu.register(new documents.Documents!())).toThrow(/requires worker tags \[gpu\].*\[cpu\]/);
    expect(cpu.types).toEqual([]);
  });

  it("rejects an actor that needs other settings once the host has started", async () => {
    const w = new Worker();
    stops.push(() => w.stop());
    await w.start();
    expect(() => w.register(new documents.Documents!())).toThrow(/already started/);
  });

  it("calls onActorStart when the host starts and onActorStop after it stopped", async () => {
    const actor = new documents.Documents!() as unknown as DocumentsInstance;
    const w = new Worker();
    w.register(actor);
    expect(actor.events).toEqual([]);
    await w.start();
    expect(actor.events).toEqual(["start"]);
    await w.stop();
    expect(actor.events).toEqual(["start", "stop"]);
  });

  it("supports inheritance: a subclass overrides one handler, inherits another, adds its own", async () => {
    const c = coordinator();
    c.register(new documents.SpecialDocuments!());
    await c.start();
    expect(await c.submit("process_document", { page_count: 2 })).toEqual({ pages: 2, type: "special" });
    expect(await c.submit("count_words", { text: "a b" })).toEqual({ words: 2 });
    expect(await c.submit("summarize", { text: "abcdefgh" })).toBe("abcde");
  });

  it("does not register methods without @Handler", () => {
    const w = new Worker();
    const actor = new documents.Documents!() as unknown as DocumentsInstance;
    w.register(actor);
    expect(w.types.sort()).toEqual(["count_words", "process_document"]);
    expect(actor.helper()).toBe("helper");
  });

  it("x.handler(type) with one argument works as a method decorator", async () => {
    const { worker, Greeter } = await fixtures.load<{ worker: Worker; Greeter: Ctor }>("registrar.fixture");
    new Greeter();
    expect(worker.types).toEqual(["greet"]);
    await worker.start();
    stops.push(() => worker.stop());
    expect(await worker.executeTask({ taskType: "greet", data: { name: "Ada" } })).toBe("hello Ada");
  });

  it.each([
    ["HandlerOnField", /@Handler\("on_field"\) is on a field "field"; it decorates instance methods only/],
    ["HandlerOnGetter", /@Handler\("on_getter"\) is on a getter "value"/],
    ["HandlerOnStatic", /@Handler\("on_static"\) is on a static method "run"/],
    ["HandlerOnClass", /@Handler\("on_class"\) is on .*class/],
    ["DuplicateTypes", /two @Handler\("same"\) methods, first and second/],
    ["NoActor", /NoActor is not decorated with @Actor\(\)\. Add @Actor\(\) to the class.*"orphan"/],
    ["NoHandlers", /has no @Handler\("task_type"\) or @On\("event.type"\) methods/],
  ])("rejects %s at registration with a ConfigError", (name, message) => {
    const w = new Worker();
    const instance = new misuse[name]!();
    expect(() => w.register(instance)).toThrow(ConfigError);
    expect(() => w.register(instance)).toThrow(message);
    expect(w.types).toEqual([]);
  });
});
