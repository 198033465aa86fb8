/** Hostile inputs shared by the tests of test/integration/hostile. */
import { revokedProxy, throwingProxy } from "../../helpers/fuzz-values.js";

/** Values that make a naive `String(e)`, `e.message` or `e instanceof X` throw. */
export function hostileThrowables(): Record<string, () => unknown> {
  const trap = () => {
    throw new Error("trap");
  };
  return {
    "an Error whose message getter throws": () => {
      const e = new Error("x");
      Object.defineProperty(e, "message", { get: trap });
      return e;
    },
    "an Error whose message and name are not strings": () => {
      const e = new Error("x");
      Object.defineProperty(e, "message", { value: { nested: true } });
      Object.defineProperty(e, "name", { value: 42 });
      return e;
    },
    "a null-prototype object": () => Object.assign(Object.create(null), { a: 1 }),
    "a null-prototype object whose toJSON throws": () => Object.assign(Object.create(null), { toJSON: trap }),
    "a Proxy whose every trap throws": () => throwingProxy(),
    "a revoked Proxy": revokedProxy,
    "a BigInt": () => 10n ** 30n,
    "a Symbol": () => Symbol("boom"),
    undefined: () => undefined,
    "a function": () => () => 1,
  };
}
