/**
 * The one add-request schema: what the controller, the config file and REST all refuse. REST
 * itself is pinned in test/api, the config file in test/config, the controller in test/plugins.
 */
import { expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import {
  AddRequestBody,
  addRequestProblem,
  DECLARED_PLUGIN_KEYS,
} from "../../src/common/add-request.ts";

const good = { name: "a-1", kind: "task", git_url: "https://h.example/r.git" };

test("a well-formed request has no problem", () => {
  expect(addRequestProblem(good)).toBeNull();
  expect(
    addRequestProblem({
      ...good,
      branch: "v1.2",
      path: "sub/dir",
      parameters: { x: 1 },
      auto_start: false,
      pat_env: "GIT_TOKEN",
      pat: "ghp_x",
    }),
  ).toBeNull();
});

test("each field's shape problem names the field and what it expects", () => {
  const cases: Array<[Record<string, unknown>, string, string]> = [
    [{ ...good, name: "a b" }, "name", "a plugin name of 1..128"],
    [{ ...good, kind: "cron" }, "kind", "'task' or 'job'"],
    [{ name: "a", kind: "job" }, "git_url", "a git URL"],
    [{ ...good, branch: "" }, "branch", "a non-empty string"],
    [{ ...good, parameters: [1] }, "parameters", "a mapping"],
    [{ ...good, auto_start: "yes" }, "auto_start", "true or false"],
    [{ ...good, pat_env: "1BAD" }, "pat_env", "the name of an environment variable"],
  ];
  for (const [req, field, expected] of cases) {
    const p = addRequestProblem(req);
    expect(p?.field).toBe(field);
    expect(p?.expected).toContain(expected);
    expect(p?.message).toStartWith(`${field}: expected`);
  }
  expect(addRequestProblem(null)?.message).toBe("request must be an object");
});

test("git's rules run after the schema; a token is never echoed", () => {
  expect(addRequestProblem({ ...good, git_url: "ext::sh" })?.message).toContain(
    "remote helper transport",
  );
  expect(addRequestProblem({ ...good, branch: "--force" })?.field).toBe("branch");
  expect(addRequestProblem({ ...good, pat: "ab\ncd" })?.message).toBe("pat contains line breaks");
  const long = addRequestProblem({ ...good, pat: `ghp_${"x".repeat(5000)}` });
  expect(long?.field).toBe("pat");
  expect(long?.message).not.toContain("ghp_");
  expect(long?.got).toBeUndefined();
  expect(addRequestProblem({ ...good, path: "p".repeat(1025) })?.message).toContain("1024");
});

test("REST body and config keys come from the same fields", () => {
  expect(Value.Check(AddRequestBody, { name: "a", git_url: "file:///r" })).toBe(true);
  // The route gives the kind: a body carrying one is refused, as is any unknown field.
  expect(Value.Check(AddRequestBody, { name: "a", git_url: "file:///r", kind: "task" })).toBe(
    false,
  );
  expect(Value.Check(AddRequestBody, { name: "a", git_url: "file:///r", brnach: "x" })).toBe(false);
  expect(DECLARED_PLUGIN_KEYS).toEqual([
    "name",
    "kind",
    "git_url",
    "branch",
    "path",
    "parameters",
    "auto_start",
    "pat_env",
  ]);
});
