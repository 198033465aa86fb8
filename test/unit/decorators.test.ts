/**
 * register() rules, lifecycle hooks, option validation and handlersFromModule(). Classes are decorated
 * by calling the decorators in the legacy form by hand (the compiled fixtures in
 * decorators-modes.test.ts cover both real compiler outputs).
 */
import {
  Actor,
  type ActorOptions,
  ConfigError,
  Coordinator,
  Handler,
  type HandlerOptions,
  handlersFromModule,
  LifecycleHookError,
  Worker,
  WorkerPool,
} from "fastagentic";
import { afterEach, describe, expect, it } from "vitest";

// biome-ignore lint/suspicious/noExplicitAny: the constraint @Actor itself uses for classes.
type AnyClass = new (...args: any) => object;

/** Applies @Handler(type) to `method` and @Actor(options) to the class, as experimentalDecorators would. */
function actor<C extends AnyClass>(
  cls: C,
  options: ActorOptions,
  handlers: Record<string, string | [string, HandlerOptions]>,
): C {
  for (const [method, spec] of Object.entries(handlers)) {
    const [type, opts] = typeof spec === "string" ? [spec, undefined] : spec;
    const descriptor = Object.getOwnPropertyDescriptor(cls.prototype, method);
    Handler(type, opts)(cls.prototype, method, descriptor as TypedPropertyDescriptor<() => unknown>);
  }
  Actor(options)(cls);
  return cls;
}

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

function pool(options: ConstructorParameters<typeof WorkerPool>[0] = {}): WorkerPool {
  const p = new WorkerPool({ minWorkers: 1, maxWorkers: 2, ...options });
  stops.push(() => p.stop());
  return p;
}

class Resizer {
  constructor(readonly factor = 2) {}
  resize(data: { w: number }) {
    return { w: data.w * this.factor };
  }
}
actor(Resizer, { maxConcurrentTasks: 2, tags: ["img"] }, { resize: "resize" });

class Encoder {
  encode(data: { s: string }) {
    return Buffer.from(data.s).toString("base64");
  }
}
actor(Encoder, { maxConcurrentTasks: 5, tags: ["cpu"] }, { encode: ["encode", { retries: 2 }] });

class Shouter {
  shout(data: { s: string }) {
    return data.s.toUpperCase();
  }
}
actor(Shouter, { tags: ["cpu"] }, { shout: "shout" });

describe("register()", () => {
  it.each([
    [42, /got number 42/],
    [null, /got null/],
    ["Resizer", /got the string "Resizer"/],
    [Resizer, /got the class Resizer itself; register an instance of it: register\(new Resizer\(\)\)/],
  ])("rejects %s with a ConfigError", (value, message) => {
    const w = new Worker();
    expect(() => w.register(value as object)).toThrow(ConfigError);
    expect(() => w.register(value as object)).toThrow(message);
  });

  it("rejects an instance of a class without decorators", () => {
    expect(() => new Worker().register(new Map())).toThrow(/Map is not decorated with @Actor\(\)/);
  });

  it("registers on a pool: workers adopt the actor's tags and concurrency; the pool runs the handlers", async () => {
    const p = pool().register(new Resizer(3));
    await p.start();
    expect(p.getWorkers()[0]).toMatchObject({ tags: ["img"], maxConcurrentTasks: 2, types: ["resize"] });
    expect(await p.submit("resize", { w: 5 })).toEqual({ w: 15 });
  });

  it("takes the union of several actors' tags; different concurrencies are a ConfigError", () => {
    const p = pool({ config: { maxConcurrentTasks: 8 } });
    p.register(new Resizer()).register(new Encoder());
    expect(p.workerTags).toEqual(["cpu", "img"]);
    expect([...p.handlerTable.types].sort()).toEqual(["encode", "resize"]);
    const q = pool();
    q.register(new Resizer());
    expect(() => q.register(new Encoder())).toThrow(
      /Encoder asks for maxConcurrentTasks 5, but Resizer .* asked for 2\. Set maxConcurrentTasks in the config/,
    );
    expect(q.handlerTable.types).toEqual(["resize"]);
  });

  it("refuses a second handler for a registered type", () => {
    const w = new Worker({ config: { tags: ["img"] } });
    w.register(new Resizer());
    expect(() => w.register(new Resizer())).toThrow(/a handler for "resize" is already registered/);
  });

  it("on a coordinator: registers on its local workers and the submit defaults apply", async () => {
    const c = new Coordinator({ config: { minWorkers: 1, autoScale: false } });
    stops.push(() => c.stop());
    c.register(new Encoder());
    await c.start();
    const task = await c.submitAsync("encode", { s: "hi" });
    expect(task.retries).toBe(2);
    expect(await c.waitFor(task.id)).toMatchObject({ status: "completed", result: "aGk=" });
  });
});

describe("lifecycle hooks", () => {
  function hooked(name: string, log: string[], failStart = false) {
    class Hooked {
      run(data: unknown) {
        return data;
      }
      onActorStart() {
        if (failStart) throw new Error(`${name} cannot start`);
        log.push(`start ${name}`);
      }
      async onActorStop() {
        log.push(`stop ${name}`);
      }
    }
    return actor(Hooked, { name }, { run: `run_${name}` });
  }

  it("start in registration order before workers run, stop in reverse after they stopped", async () => {
    const log: string[] = [];
    const A = hooked("a", log);
    const B = hooked("b", log);
    const p = pool().register(new A()).register(new B());
    await p.start();
    expect(log).toEqual(["start a", "start b"]);
    expect(p.workerCount).toBe(1);
    await p.stop();
    expect(log).toEqual(["start a", "start b", "stop b", "stop a"]);
  });

  it("a failing onActorStart fails start() with a LifecycleHookError and stops the actors already started", async () => {
    const log: string[] = [];
    const A = hooked("a", log);
    const B = hooked("b", log, true);
    const p = pool().register(new A()).register(new B());
    const failure = await p.start().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LifecycleHookError);
    expect((failure as Error).message).toMatch(/b\.onActorStart\(\) failed on WorkerPool .*: b cannot start/);
    expect(log).toEqual(["start a", "stop a"]);
    expect(p.workerCount).toBe(0);
  });

  it("a Worker's failing hook is reported as such, not as a connection error", async () => {
    const w = new Worker().register(new (hooked("c", [], true))());
    await expect(w.start()).rejects.toBeInstanceOf(LifecycleHookError);
  });

  it("an actor with hooks cannot join a started host", async () => {
    const p = pool();
    await p.start();
    expect(() => p.register(new (hooked("d", []))())).toThrow(
      /has lifecycle hooks .* register it before start\(\)/,
    );
  });
});

describe("decorator options", () => {
  it.each([
    [() => Actor({ priority: 7 as never }), /priority must be a TaskPriority/],
    [() => Actor({ maxConcurrentTasks: 0 }), /maxConcurrentTasks must be an integer from 1 to 10000/],
    [() => Actor({ tags: ["a b"] }), /tags: Invalid tag "a b"/],
    [() => Actor({ concurrency: 2 } as never), /Unknown option "concurrency" in @Actor\(\) options/],
    [() => Handler("bad type"), /@Handler\("bad type"\): Invalid task type/],
    [() => Handler("t", { timeoutMs: -1 }), /timeoutMs must be a whole number of milliseconds from 1/],
    [() => Handler("t", { tags: ["x"] } as never), /Unknown option "tags"/],
  ])("rejects bad options when the decorator is created (%#)", (make, message) => {
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(message);
  });
});

describe("x.handler(type) as a method decorator (shared call-form detection)", () => {
  it("registers a method in the legacy form and rejects a field", () => {
    const w = new Worker();
    class Legacy {
      run(data: { n: number }) {
        return data.n;
      }
    }
    const descriptor = Object.getOwnPropertyDescriptor(Legacy.prototype, "run")!;
    w.handler("legacy_run")(Legacy.prototype, "run", descriptor);
    expect(w.types).toEqual(["legacy_run"]);
    expect(() => w.handler("legacy_field")(Legacy.prototype, "field", undefined as never)).toThrow(
      /Worker\.handler\(\)\("legacy_field"\) decorates methods only, not a field "field"/,
    );
  });

  it("registers a method in the standard form, bound to the first instance", async () => {
    const w = new Worker();
    stops.push(() => w.stop());
    const initializers: Array<(this: unknown) => void> = [];
    const context = { kind: "method", name: "run", static: false, private: false, metadata: {} };
    const method = function (this: { n: number }) {
      return this.n;
    };
    w.handler("std_run")(method, { ...context, addInitializer: (f: () => void) => initializers.push(f) });
    for (const init of initializers) init.call({ n: 7 });
    for (const init of initializers) init.call({ n: 9 }); // a second instance: not bound again
    expect(w.types).toEqual(["std_run"]);
    await w.start();
    expect(await w.executeTask({ taskType: "std_run" })).toBe(7);
  });
});

describe("handlersFromModule()", () => {
  const ns = (value: Record<string, unknown>) =>
    Object.assign(Object.create(null), value, { [Symbol.toStringTag]: "Module" });

  it("accepts a decorated class, constructing it", () => {
    const m = handlersFromModule(ns({ default: Resizer }), "./resize.js");
    expect(m).toMatchObject({ types: ["resize"], tags: ["img"], maxConcurrentTasks: 2 });
    expect(m.actors[0]).toBeInstanceOf(Resizer);
  });

  it("accepts an array of classes and instances, and an object of functions", async () => {
    const m = handlersFromModule([Resizer, new Shouter()], "./many.js");
    expect(m.types).toEqual(["resize", "shout"]);
    expect(m.tags).toEqual(["cpu", "img"]);
    expect(m.maxConcurrentTasks).toBe(2);
    const fns = handlersFromModule({ double: (d: number) => d * 2 }, "./fns.js");
    const p = pool();
    fns.registerOn(p);
    await p.start();
    expect(await p.submit("double", 21)).toBe(42);
  });

  it("registers everything on a target, with the actors' options when the caller passes them on", async () => {
    const m = handlersFromModule({ __esModule: true, default: [Resizer] }, "./cjs.js");
    const p = pool({ config: { tags: m.tags, maxConcurrentTasks: m.maxConcurrentTasks } });
    m.registerOn(p);
    await p.start();
    expect(await p.submit("resize", { w: 1 })).toEqual({ w: 2 });
  });

  it.each([
    [ns({}), /has no default export/],
    [undefined, /exports undefined by default/],
    [[], /exports an empty array/],
    [{}, /is an empty object/],
    [() => 1, /is the function \(anonymous\) \(not an @Actor class\)/],
    [{ resize: "not a function" }, /the handler for "resize" is string "not a function", not a function/],
    [{ "bad type": () => 1 }, /key "bad type": Invalid task type/],
    [[Resizer, 3], /item 1\) is number 3, which handles no task type/],
    [[Resizer, { resize: () => 1 }], /item 1\) is an instance of Object/],
    [[Resizer, Shouter, Resizer], /has two handlers for "resize"/],
    [[Resizer, Encoder], /different maxConcurrentTasks \(2, 5\)/],
  ])("rejects an unusable export with a ConfigError naming the module (%#)", (exported, message) => {
    expect(() => handlersFromModule(exported, "./handlers.js")).toThrow(ConfigError);
    expect(() => handlersFromModule(exported, "./handlers.js")).toThrow(message);
  });

  it("explains a class that cannot be constructed without arguments", () => {
    class NeedsDb {
      constructor(db: { query(): number }) {
        db.query();
      }
      run() {
        return 1;
      }
    }
    actor(NeedsDb as AnyClass, {}, { run: "needs_db" });
    expect(() => handlersFromModule(NeedsDb, "./db.js")).toThrow(
      /could not construct NeedsDb without arguments: .*Export an instance instead/,
    );
  });
});
