import { describe, expect, test } from "bun:test";
import { parseArgs } from "../../src/cli/args.ts";
import { UsageError } from "../../src/cli/errors.ts";

const SPEC = {
  path: { type: "string" as const },
  kind: { type: "string" as const, choices: ["task", "job"] },
  json: { type: "boolean" as const, short: "j" },
};

describe("parseArgs", () => {
  test("positionals and flags in any order, --x=v and --x v", () => {
    const r = parseArgs(["repo", "--path", "a/b", "--kind=job", "-j"], SPEC, 1);
    expect(r.positionals).toEqual(["repo"]);
    expect(r.flags).toEqual({ path: "a/b", kind: "job", json: true });
  });

  test("-- ends flags so a positional may start with a dash", () => {
    const r = parseArgs(["--", "-weird-dir"], SPEC, 1);
    expect(r.positionals).toEqual(["-weird-dir"]);
  });

  const bad: Array<[string, string[], RegExp]> = [
    ["unknown long flag", ["--nope"], /unknown option '--nope'/],
    ["unknown short flag", ["-x"], /unknown option '-x'/],
    ["missing value at end", ["--path"], /needs a value/],
    ["flag instead of value", ["--path", "--kind", "job"], /needs a value/],
    ["empty value", ["--path="], /non-empty/],
    ["bad choice", ["--kind", "daemon"], /must be one of task, job/],
    ["value on boolean", ["--json=yes"], /takes no value/],
    ["repeated flag", ["--path", "a", "--path", "b"], /given twice/],
    ["too many positionals", ["a", "b"], /unexpected argument 'b'/],
    ["NUL byte", ["a\0b"], /NUL/],
    ["huge argument", ["x".repeat(5000)], /longer than 4096/],
    ["prototype key as flag", ["--__proto__", "x"], /unknown option/],
    ["constructor as flag", ["--constructor", "x"], /unknown option/],
  ];
  for (const [what, argv, message] of bad) {
    test(`usage error: ${what}`, () => {
      expect(() => parseArgs(argv, SPEC, 1)).toThrow(UsageError);
      expect(() => parseArgs(argv, SPEC, 1)).toThrow(message);
    });
  }
});
