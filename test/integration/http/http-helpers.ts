/** A small fetch wrapper for the HTTP tests: status, headers, parsed JSON body (or {}) and the raw text. */
export interface Reply {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: test bodies are checked field by field.
  body: any;
  text: string;
}

export async function call(
  base: string,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const init: RequestInit = { method, headers };
  if (options.body !== undefined) {
    init.body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  let body: unknown = {};
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (metrics, HTML)
  }
  return { status: response.status, headers: response.headers, body, text };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
export const basic = (token: string, user = "ops") => ({
  authorization: `Basic ${Buffer.from(`${user}:${token}`).toString("base64")}`,
});
