/**
 * What every transport checks the same way: the namespace and the parts of a transport URL.
 *
 * One rule for the namespace of every transport (memory, NATS, AMQP), so a deployment that works on
 * one works on the others: 1-32 letters, digits, "_" or "-", starting with a letter or a digit. It
 * is the first part of every subject, stream, queue and exchange name: no dots or wildcards (NATS
 * tokens, AMQP topics), no leading "_" (NATS's `_INBOX`), and not "amq" (RabbitMQ's own prefix).
 */
import { ConfigError } from "../src/errors.js";
import { showValue } from "../src/limits.js";

const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

export const NAMESPACE_RULE =
  '1-32 letters, digits, "_" or "-", starting with a letter or digit, and not "amq" (e.g. "shop" or "shop-staging")';

/** What is wrong with a namespace, or undefined. */
export function namespaceProblem(namespace: unknown): string | undefined {
  if (typeof namespace !== "string" || !NAMESPACE.test(namespace)) return NAMESPACE_RULE;
  if (namespace.toLowerCase() === "amq") return `${NAMESPACE_RULE}: RabbitMQ reserves "amq." for itself`;
  return undefined;
}

/** Throws a ConfigError naming `where` unless the namespace follows the rule. */
export function assertNamespace(namespace: unknown, where: string): asserts namespace is string {
  const problem = namespaceProblem(namespace);
  if (problem !== undefined) {
    throw new ConfigError(`Invalid namespace ${showValue(namespace)} (${where}): use ${problem}.`);
  }
}

/** A percent-encoded part of a URL, decoded; a malformed encoding is a ConfigError (not a URIError). */
export function decodeUrlPart(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new ConfigError(
      `The ${what} in the transport URL has a malformed percent-encoding (a "%" not followed by two hex digits); ` +
        'write "%" as %25.',
    );
  }
}
