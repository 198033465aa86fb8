/**
 * Tells how a decorator was called, so one decorator works whether the user's tsconfig uses
 * standard (TC39) decorators or `experimentalDecorators`. The one place that knows both forms:
 *   standard: (value, context)            context = { kind, name, static, metadata, addInitializer }
 *   legacy:   (prototype | class, key, descriptor | undefined)   on a member
 *             (class)                                               on a class
 * A single function argument is ambiguous (a legacy class decorator, or a plain call such as
 * `x.handler("t")(fn)`); the caller decides what it means.
 */

/** What a decorator was placed on. */
export type DecoratedKind = "class" | "method" | "getter" | "setter" | "accessor" | "field";

export interface StandardDecoratorCall {
  form: "standard";
  kind: DecoratedKind;
  /** The decorated value: the class, the method, the getter… (undefined for a field). */
  value: unknown;
  name: string | symbol | undefined;
  isStatic: boolean;
  isPrivate: boolean;
  /** `context.metadata` (shared by every decorator of one class), when the compiler provides it. */
  metadata: object | undefined;
  addInitializer(fn: (this: unknown) => void): void;
}

export interface LegacyMemberDecoratorCall {
  form: "legacy";
  kind: Exclude<DecoratedKind, "class">;
  /** The prototype (instance members) or the class (static members). */
  target: object;
  /** The class that declares the member. */
  owner: object;
  name: string | symbol;
  isStatic: boolean;
  descriptor: PropertyDescriptor | undefined;
}

export interface SingleArgumentCall {
  form: "single";
  value: unknown;
}

export interface UnknownDecoratorCall {
  form: "unknown";
  args: readonly unknown[];
}

export type DecoratorCall =
  | StandardDecoratorCall
  | LegacyMemberDecoratorCall
  | SingleArgumentCall
  | UnknownDecoratorCall;

interface ContextLike {
  kind: string;
  name?: string | symbol;
  static?: boolean;
  private?: boolean;
  metadata?: unknown;
  addInitializer(fn: (this: unknown) => void): void;
}

function isContext(value: unknown): value is ContextLike {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { kind?: unknown }).kind === "string" &&
    typeof (value as { addInitializer?: unknown }).addInitializer === "function"
  );
}

const STANDARD_KINDS: ReadonlySet<string> = new Set([
  "class",
  "method",
  "getter",
  "setter",
  "accessor",
  "field",
]);

export function decoratorCall(args: readonly unknown[]): DecoratorCall {
  const [first, second, third] = args;
  if (isContext(second) && STANDARD_KINDS.has(second.kind)) {
    const metadata = second.metadata;
    return {
      form: "standard",
      kind: second.kind as DecoratedKind,
      value: first,
      name: second.name,
      isStatic: second.static === true,
      isPrivate: second.private === true,
      metadata: typeof metadata === "object" && metadata !== null ? metadata : undefined,
      addInitializer: (fn) => second.addInitializer(fn),
    };
  }
  if (
    (typeof first === "object" || typeof first === "function") &&
    first !== null &&
    (typeof second === "string" || typeof second === "symbol")
  ) {
    const isStatic = typeof first === "function";
    const descriptor =
      typeof third === "object" && third !== null ? (third as PropertyDescriptor) : undefined;
    const owner = isStatic ? first : ((first as { constructor?: object }).constructor ?? first);
    return {
      form: "legacy",
      kind: legacyKind(descriptor),
      target: first,
      owner,
      name: second,
      isStatic,
      descriptor,
    };
  }
  if (args.length === 1) return { form: "single", value: first };
  return { form: "unknown", args };
}

function legacyKind(descriptor: PropertyDescriptor | undefined): LegacyMemberDecoratorCall["kind"] {
  if (descriptor === undefined) return "field";
  if (typeof descriptor.value === "function") return "method";
  if (descriptor.get !== undefined && descriptor.set !== undefined) return "accessor";
  if (descriptor.get !== undefined) return "getter";
  if (descriptor.set !== undefined) return "setter";
  return "field";
}

/** "method", "field", "getter"… as a user reads it, e.g. `a static method "run"`. */
export function describePlacement(call: StandardDecoratorCall | LegacyMemberDecoratorCall): string {
  const name = call.name === undefined ? "" : ` "${String(call.name)}"`;
  return `${call.isStatic ? "a static " : call.kind === "accessor" ? "an " : "a "}${call.kind}${name}`;
}
