/**
 * The @Entity class form compiled with standard and with legacy (experimentalDecorators)
 * decorators, registered on a real coordinator; and handler modules that export entity types.
 */
import {
  ConfigError,
  Coordinator,
  EntityEventError,
  EntityRejectedError,
  handlersFromModule,
  Worker,
} from "fastagentic";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Actor } from "../../../src/decorators/actor.decorator.js";
import { defineEntity } from "../../../src/entities/define-entity.js";
import { Entity } from "../../../src/entities/entity.decorator.js";
import { logMachine } from "../../conformance/entity-machines.js";
import {
  type CompiledFixtures,
  compileFixtures,
  type DecoratorMode,
} from "../../helpers/compile-fixtures.js";

type Ctor = new (...args: unknown[]) => object;
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

function coordinator(): Coordinator {
  const c = new Coordinator({ config: { minWorkers: 1, maxWorkers: 1, autoScale: false } });
  stops.push(() => c.stop({ graceful: true }));
  return c;
}

describe.each<DecoratorMode>(["standard", "legacy"])("@Entity compiled with %s decorators", (mode) => {
  let fixtures: CompiledFixtures;
  let Cart: Ctor;

  beforeAll(async () => {
    fixtures = compileFixtures(mode);
    Cart = (await fixtures.load<{ Cart: Ctor }>("cart.entity")).Cart;
  }, 60_000);

  it("type-checks, and runs (state, event) => nextState methods bound to the registered instance", async () => {
    expect(fixtures.diagnostics.filter((d) => d.startsWith("cart.entity"))).toEqual([]);
    const c = coordinator();
    c.register(new Cart(2));
    await c.start();
    const cart = c.entity(Cart, "c-1");
    await cart.send({ type: "ADD", sku: "a" });
    expect(await cart.ask({ type: "ADD", sku: "b" })).toMatchObject({
      context: { items: ["a", "b"], discount: 0 },
      version: 2,
    });
    await expect(cart.ask({ type: "ADD", sku: "c" })).rejects.toBeInstanceOf(EntityEventError);
    await expect(cart.ask({ type: "REMOVE" })).rejects.toBeInstanceOf(EntityRejectedError);
    expect(await cart.ask({ type: "DISCOUNT", percent: 10 })).toMatchObject({
      context: { discount: 10 },
      version: 3,
    });
  });

  it("refuses the class itself where an instance is needed, and a second type of the same name", () => {
    const w = new Worker();
    expect(() => w.register(Cart)).toThrow(/register an instance: register\(new Cart\(\)\)/);
    w.register(new Cart());
    expect(() => w.register(new Cart())).toThrow(/already registered/);
  });
});

describe("entity types in handler modules", () => {
  it("registers definitions and @Entity classes of a module's default export", async () => {
    const Log = defineEntity("module-log", logMachine);
    class Notes {
      initial() {
        return { notes: [] as string[] };
      }
    }
    Entity("notes")(Notes);
    const module = handlersFromModule([Log, Notes], "test module");
    expect(module.types).toEqual([]);
    expect(module.entities).toHaveLength(2);
    const c = coordinator();
    expect(() => module.registerOn(c)).toThrow(/no @Handler/); // Notes handles no event
    const ok = handlersFromModule([Log], "test module");
    const c2 = coordinator();
    ok.registerOn(c2);
    await c2.start();
    expect((await c2.entity(Log, "m").ask({ type: "APPEND", n: 1 })).context.log).toEqual([1]);
  });

  it("refuses a class that is both an @Actor and an @Entity", () => {
    class Both {}
    Entity("both")(Both);
    Actor()(Both);
    expect(() => new Worker().register(new Both())).toThrow(ConfigError);
  });
});
