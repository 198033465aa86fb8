/**
 * The command line refuses bad usage and bad configuration with exit code 2 and a message (not a
 * stack): no or unknown command, unknown flag, missing argument, an in-process transport for
 * commands that need other processes, a transport URL that does not parse (without echoing its
 * password). None of these needs a broker.
 */
import { describe, expect, it } from "vitest";
import { LEDGER_HANDLERS, runCli } from "../chaos/harness.js";
import { NATS_URL } from "../helpers/brokers.js";

/** No transport from the environment of whoever runs the tests. */
const NO_ENV = { FASTAGENTIC_TRANSPORT: "" };

describe("fastagentic: bad usage exits 2", () => {
  const cases: Array<[string, string[], RegExp]> = [
    ["no command", [], /Usage: fastagentic/],
    ["an unknown command", ["frobnicate"], /unknown command 'frobnicate'/],
    ["an unknown flag", ["status", "--bogus"], /unknown option '--bogus'/],
    ["submit without a type", ["submit"], /missing required argument 'type'/],
    ["an option without its value", ["submit", "echo", "--priority"], /argument missing/],
    ["too many arguments", ["submit", "echo", "{}", "extra"], /too many arguments/],
    ["a bad --priority", ["submit", "echo", "{}", "--priority", "urgent"], /--priority must be low/],
    [
      "submit on memory:// (no transport given)",
      ["submit", "echo", '{"a":1}', "--wait"],
      /fastagentic submit needs a broker shared with other processes, but no --transport was given/,
    ],
    [
      "submit on an explicit memory://",
      ["submit", "echo", "{}", "--transport", "memory://"],
      /the transport is memory:\/\/, which lives inside this one process/,
    ],
    [
      "worker on memory://",
      ["worker", "--handlers", LEDGER_HANDLERS],
      /fastagentic worker needs a broker shared with other processes/,
    ],
    [
      "worker --processes 2 on memory:// (refused before forking)",
      ["worker", "--handlers", LEDGER_HANDLERS, "--processes", "2"],
      /fastagentic worker needs a broker/,
    ],
    ["status on memory://", ["status"], /fastagentic status needs a broker/],
    [
      "a duration past the timer limit",
      ["submit", "echo", "{}", "--timeout-ms", "2147483648", "--transport", NATS_URL],
      /--timeout-ms must be an integer from 1 to 2147483647, got "2147483648"/,
    ],
    [
      "submit with 7 tags (a task no worker could run)",
      ["submit", "echo", "{}", "--tags", "a,b,c,d,e,f,g", "--transport", NATS_URL],
      /A task with 7 tags can never run/,
    ],
    [
      "worker with 7 tags",
      ["worker", "--handlers", LEDGER_HANDLERS, "--tags", "a,b,c,d,e,f,g", "--transport", NATS_URL],
      /at most 6 tags/,
    ],
    ["a bad namespace", ["status", "--namespace", "a.b", "--transport", NATS_URL], /Invalid namespace "a.b"/],
    [
      "a NaN duration",
      ["status", "--wait-ms", "NaN"],
      /--wait-ms must be an integer from 1 to 2147483647, got "NaN"/,
    ],
    [
      "a transport URL that does not parse, with a password in it",
      ["submit", "echo", "{}", "--transport", "nats://u:S3cr3t@127.0.0.1:notaport"],
      /"nats:\/\/\*\*\*@127\.0\.0\.1:notaport" is not a transport URL/,
    ],
  ];

  for (const [what, args, message] of cases) {
    it.concurrent(what, async () => {
      const r = await runCli(args, NO_ENV);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
      expect(r.stdout + r.stderr).not.toContain("S3cr3t");
    });
  }

  it("--help exits 0", async () => {
    const r = await runCli(["--help"], NO_ENV);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: fastagentic/);
  });
});
