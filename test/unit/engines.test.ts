/**
 * The package promises a Node version (`engines.node`); every package it installs must accept
 * the oldest Node that promise admits. `npm ci` already refuses a package whose engines reject
 * the running Node (`engine-strict=true` in .npmrc, so CI fails on a mismatch); this checks the
 * production dependencies against the promise itself, whatever Node runs the tests.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import semver from "semver";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/script.js";

interface Manifest {
  name: string;
  version: string;
  engines?: { node?: string };
}

const read = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));

/** Directories of the installed packages (`npm ls --parseable`), the root first. */
function installed(omitDev: boolean): string[] {
  const args = ["ls", "--all", "--parseable", ...(omitDev ? ["--omit=dev"] : [])];
  return execFileSync("npm", args, { cwd: ROOT, encoding: "utf8" }).trim().split("\n");
}

/** Packages whose engines.node does not accept `version`. */
function refusing(dirs: string[], version: string): string[] {
  return dirs
    .map(read)
    .filter((m) => m.engines?.node !== undefined && !semver.satisfies(version, m.engines.node))
    .map((m) => `${m.name}@${m.version} wants node ${m.engines?.node}`);
}

describe("engines", () => {
  const promise = read(ROOT).engines?.node ?? "";
  const oldest = semver.minVersion(promise)?.version ?? "none";

  it("the package states the Node versions it supports, and .npmrc makes npm refuse a mismatch", () => {
    expect(semver.validRange(promise), `engines.node is "${promise}"`).not.toBeNull();
    expect(oldest.startsWith("20.")).toBe(true);
    expect(readFileSync(join(ROOT, ".npmrc"), "utf8")).toMatch(/^engine-strict=true$/m);
  });

  it("every production dependency accepts the oldest Node the package promises", () => {
    expect(refusing(installed(true).slice(1), oldest)).toEqual([]);
  }, 60_000);

  it("every installed package (development tools too) accepts the Node running the tests", () => {
    expect(refusing(installed(false).slice(1), process.versions.node)).toEqual([]);
  }, 60_000);
});
