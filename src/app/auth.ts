/**
 * Authentication for everything an App serves (its REST surface, /metrics, the dashboard, agent
 * endpoints): `new App({ auth })` runs `auth` on every request before any route (and before the
 * 404 answer, so an anonymous caller learns nothing about the routes). `bearerToken()` is a ready
 * one: `Authorization: Bearer <token>`, or HTTP Basic with the token as password, which is what
 * lets a browser open the dashboard (it asks for the password once; EventSource sends it too).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { ConfigError } from "../errors.js";

/** What an auth function sees of a request. */
export interface AuthRequest {
  method: string;
  /** The path and query string. */
  url: string;
  headers: IncomingHttpHeaders;
  /** The client's address (or the proxy's, unless the App trusts X-Forwarded-For). */
  ip: string;
  /** "read" for GET, HEAD and OPTIONS; "write" for everything else (submit, cancel, retry, purge). */
  access: "read" | "write";
}

/** A refusal: 401 asks for (other) credentials, 403 says these credentials may not do this. */
export interface AuthRefusal {
  status: 401 | 403;
  /** Shown to the client; default: a generic message that names no route and no credential. */
  message?: string;
  /** `WWW-Authenticate` challenges sent with a 401. */
  challenges?: string[];
}

/** true allows; false refuses with 401; an AuthRefusal refuses as it says. Throwing refuses with 500. */
export type AuthDecision = boolean | AuthRefusal;
export type AuthFunction = (request: AuthRequest) => AuthDecision | Promise<AuthDecision>;

export interface BearerTokenOptions {
  /** Tokens allowed to do everything. */
  tokens: string | readonly string[];
  /** Tokens allowed to read only (GET: the dashboard, /workers, /stats, /metrics): writes get 403. */
  readOnlyTokens?: string | readonly string[];
  /** The realm in the challenges. Default "fastagentic". */
  realm?: string;
}

const MIN_TOKEN_LENGTH = 16;

/**
 * An AuthFunction accepting `Authorization: Bearer <token>` or HTTP Basic with any user name and
 * the token as password. Tokens are compared in constant time. A write sent by a browser with
 * Basic credentials from another site (Origin or Sec-Fetch-Site says so) is refused (403), since
 * the browser attaches those credentials by itself.
 */
export function bearerToken(options: BearerTokenOptions | string | readonly string[]): AuthFunction {
  const o: BearerTokenOptions =
    typeof options === "string" || Array.isArray(options)
      ? { tokens: options as string | readonly string[] }
      : (options as BearerTokenOptions);
  const full = digests(o.tokens, "tokens");
  const readOnly = o.readOnlyTokens === undefined ? [] : digests(o.readOnlyTokens, "readOnlyTokens");
  if (full.length === 0) throw new ConfigError("bearerToken(): give at least one token.");
  const realm = (o.realm ?? "fastagentic").replace(/["\\\r\n]/g, "");
  const challenges = [`Bearer realm="${realm}"`, `Basic realm="${realm}", charset="UTF-8"`];
  return (request) => {
    const presented = credentialOf(request.headers["authorization"]);
    if (presented === undefined) return { status: 401, challenges };
    const digest = sha256(presented.token);
    const isFull = full.some((d) => timingSafeEqual(d, digest));
    const isReadOnly = !isFull && readOnly.some((d) => timingSafeEqual(d, digest));
    if (!isFull && !isReadOnly) {
      return {
        status: 401,
        challenges: [`Bearer realm="${realm}", error="invalid_token"`, challenges[1] as string],
      };
    }
    if (request.access === "write") {
      if (isReadOnly)
        return { status: 403, message: "This token may read only; this request changes something." };
      if (presented.scheme === "basic" && crossSite(request.headers)) {
        return {
          status: 403,
          message:
            "Cross-site request refused: send changes from the dashboard's own page or with a Bearer token.",
        };
      }
    }
    return true;
  };
}

function digests(tokens: string | readonly string[], what: string): Buffer[] {
  const list = typeof tokens === "string" ? [tokens] : [...tokens];
  return list.map((token, i) => {
    if (typeof token !== "string" || token.length < MIN_TOKEN_LENGTH) {
      throw new ConfigError(
        `bearerToken(): ${what}[${i}] is ${typeof token === "string" ? `${token.length} characters long` : `a ${typeof token}`}; ` +
          `use a random token of at least ${MIN_TOKEN_LENGTH} characters (e.g. \`openssl rand -hex 32\`).`,
      );
    }
    return sha256(token);
  });
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** The token of a Bearer or Basic Authorization header (Basic: the password), if any. */
function credentialOf(header: string | undefined): { scheme: "bearer" | "basic"; token: string } | undefined {
  if (typeof header !== "string" || header.length > 8192) return undefined;
  const match = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header);
  if (!match) return undefined;
  const scheme = (match[1] as string).toLowerCase() as "bearer" | "basic";
  const value = match[2] as string;
  if (scheme === "bearer") return { scheme, token: value };
  const decoded = Buffer.from(value, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { scheme, token: decoded.slice(colon + 1) };
}

/** Whether a browser says the request comes from another site. */
function crossSite(headers: IncomingHttpHeaders): boolean {
  const site = headers["sec-fetch-site"];
  if (site === "cross-site" || site === "same-site") return true;
  const origin = headers["origin"];
  if (typeof origin !== "string" || origin === "") return false;
  try {
    return origin === "null" || new URL(origin).host !== headers["host"];
  } catch {
    return true;
  }
}

/** The access a method needs. */
export function accessOf(method: string): "read" | "write" {
  return method === "GET" || method === "HEAD" || method === "OPTIONS" ? "read" : "write";
}

/** The answer to a refused request: the status, the body (no route, no credential) and headers. */
export function refusalOf(decision: AuthRefusal | false): {
  status: 401 | 403;
  body: { error: { code: string; message: string } };
  headers: Record<string, string[]>;
} {
  const refusal: AuthRefusal = decision === false ? { status: 401 } : decision;
  const status = refusal.status === 403 ? 403 : 401;
  const message =
    refusal.message ??
    (status === 401
      ? "Authentication required: send the credentials this server expects (e.g. Authorization: Bearer <token>)."
      : "Forbidden: these credentials may not do this.");
  const headers: Record<string, string[]> = {};
  if (status === 401 && refusal.challenges && refusal.challenges.length > 0) {
    headers["www-authenticate"] = refusal.challenges;
  }
  return {
    status,
    body: { error: { code: status === 401 ? "FA_UNAUTHORIZED" : "FA_FORBIDDEN", message } },
    headers,
  };
}
