/**
 * Where the decorators store what they record. Legacy decorators (`experimentalDecorators`) see the
 * class, so they write on it; standard decorators of members do not see the class, so they write on
 * `context.metadata`, the object the runtime then attaches to the class as `Class[Symbol.metadata]`.
 * Both are reflect-metadata targets; actor-explorer.ts reads both.
 */
import "reflect-metadata";
import { ConfigError } from "../errors.js";
import type { LegacyMemberDecoratorCall, StandardDecoratorCall } from "./decorator-call.js";

/**
 * `Symbol.metadata`. Node 20 does not define it yet, and TypeScript's standard-decorator output only
 * passes `context.metadata` when it exists, so it is defined here (as esbuild does: the registered
 * symbol "Symbol.metadata"), before any user class is decorated.
 */
const symbolWithMetadata = Symbol as { metadata?: symbol };
symbolWithMetadata.metadata ??= Symbol.for("Symbol.metadata");
export const SYMBOL_METADATA: symbol = symbolWithMetadata.metadata;

/** Appends `entry` to the list stored under `key` on the decorated class (or its metadata object). */
export function appendMetadata(
  key: string,
  entry: unknown,
  call: StandardDecoratorCall | LegacyMemberDecoratorCall | { form: "class"; target: object },
  decorator: string,
): void {
  const target = metadataTarget(call, decorator);
  const list = (Reflect.getOwnMetadata(key, target) as unknown[] | undefined) ?? [];
  Reflect.defineMetadata(key, [...list, entry], target);
}

function metadataTarget(
  call: StandardDecoratorCall | LegacyMemberDecoratorCall | { form: "class"; target: object },
  decorator: string,
): object {
  if (call.form === "legacy") return call.owner;
  if (call.form === "class") return call.target;
  if (call.metadata !== undefined) return call.metadata;
  throw new ConfigError(
    `${decorator}: this compiler passes no decorator metadata (context.metadata), which standard ` +
      "decorators need to find the handlers of a class. Use TypeScript 5.2 or later (or esbuild/tsx), " +
      'or set "experimentalDecorators": true in tsconfig.json.',
  );
}
