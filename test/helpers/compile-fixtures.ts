/**
 * Compiles the decorator fixtures (test/fixtures/decorators) with the installed TypeScript under one
 * of their tsconfigs, and returns the directory holding the emitted JavaScript. The fixtures import
 * "fastagentic", which vitest resolves to src/index.ts, so the emitted classes meet the real library.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";

export const FIXTURES_DIR = fileURLToPath(new URL("../fixtures/decorators/", import.meta.url));

export type DecoratorMode = "standard" | "legacy";

export interface CompiledFixtures {
  outDir: string;
  /** Type errors in the fixtures, as "file:line: message". */
  diagnostics: string[];
  /** Imports an emitted fixture module by its source name (e.g. "documents.actor"). */
  load<T = Record<string, unknown>>(name: string): Promise<T>;
}

export function compileFixtures(mode: DecoratorMode): CompiledFixtures {
  const configPath = join(FIXTURES_DIR, `tsconfig.${mode}.json`);
  const read = ts.readConfigFile(configPath, ts.sys.readFile);
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, "\n"));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, dirname(configPath));
  const outDir = mkdtempSync(join(tmpdir(), `fastagentic-fixtures-${mode}-`));
  const program = ts.createProgram(parsed.fileNames, { ...parsed.options, noEmit: false, outDir });
  const diagnostics: string[] = [];
  for (const file of parsed.fileNames) {
    const source = program.getSourceFile(file);
    if (!source) throw new Error(`fixture ${file} is not in the program`);
    for (const d of [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]) {
      const line = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line + 1;
      diagnostics.push(`${basename(file)}:${line}: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`);
    }
    // Emit only the fixture itself (not the library it imports), next to nothing else.
    program.emit(source, (fileName, text) => {
      if (fileName.endsWith(".js")) writeFileSync(join(outDir, basename(fileName)), text);
    });
  }
  return {
    outDir,
    diagnostics,
    load: async <T>(name: string) =>
      (await import(/* @vite-ignore */ pathToFileURL(join(outDir, `${name}.js`)).href)) as T,
  };
}
