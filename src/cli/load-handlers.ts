/** Loads the module named by `--handlers`, with errors that say what to fix. */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type HandlerModule, handlersFromModule } from "../decorators/handler-module.js";
import { ConfigError, describeThrown } from "../errors.js";

export async function loadHandlers(path: string | undefined): Promise<HandlerModule> {
  if (!path) {
    throw new ConfigError(
      "fastagentic worker needs --handlers <module>: a module whose default export maps task types to " +
        "handler functions, or is a decorated @Actor class (or an array of them).",
    );
  }
  const file = resolve(process.cwd(), path);
  if (!existsSync(file))
    throw new ConfigError(`The handlers module ${file} does not exist (from --handlers ${path}).`);
  let exported: unknown;
  try {
    exported = await import(pathToFileURL(file).href);
  } catch (error) {
    throw new ConfigError(`The handlers module ${file} failed to load: ${describeThrown(error)}`, {
      cause: error,
    });
  }
  return handlersFromModule(exported, `The handlers module ${path}`);
}
