/**
 * Credentials never leave in a message, a log line or a stack: every URL the library echoes goes
 * through `redactUrl`, which hides the password (and a NATS token, written as the user part),
 * including in text that failed to parse as a URL, where whatever precedes the last "@" is hidden.
 */

/** Schemes whose user part alone is a secret (a NATS token: `nats://s3cr3t@host`). */
const TOKEN_SCHEMES = new Set(["nats:", "tls:"]);

/** The URL with its credentials hidden (`***`), for messages and logs. */
export function redactUrl(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = typeof url === "string" ? new URL(url) : new URL(url.href);
  } catch {
    return redactText(String(url));
  }
  // An opaque URL ("user:pass@host" parses with the scheme "user:") keeps its "@" in its path.
  if (parsed.host === "") return redactText(parsed.href);
  if (parsed.password) parsed.password = "***";
  else if (parsed.username && TOKEN_SCHEMES.has(parsed.protocol)) parsed.username = "***";
  return parsed.href;
}

/** Text that is not a URL with a host: everything between "//" (or the start) and the last "@" is hidden. */
function redactText(text: string): string {
  const at = text.lastIndexOf("@");
  if (at < 0) return text;
  const scheme = text.indexOf("://");
  const from = scheme >= 0 && scheme < at ? scheme + 3 : 0;
  return `${text.slice(0, from)}***${text.slice(at)}`;
}
