/** The server config's `sandbox:` section: defaults, the `spare` switch, refusals with the path. */
import { expect, test } from "bun:test";
import { parseSandbox } from "../../src/plugins/host/settings.ts";

const fail = (path: string, expected: string, got: unknown): Error =>
  new Error(`${path}: expected ${expected}, got ${JSON.stringify(got)}`);

test("defaults: a spare process, limits, uid 65534", () => {
  const cfg = parseSandbox(undefined, "sandbox", fail);
  expect(cfg.spare).toBe(true);
  expect(cfg.uid).toBe(65534);
  expect(cfg.limits.memoryMiB).toBe(512);
});

test("spare: false turns the spare process off; other keys keep their defaults", () => {
  const cfg = parseSandbox({ spare: false, pass_env: ["SITE"] }, "sandbox", fail);
  expect(cfg.spare).toBe(false);
  expect(cfg.passEnv).toEqual(["SITE"]);
  expect(cfg.limits.memoryMiB).toBe(512);
});

test("a spare that is not a boolean, or an unknown key, is refused with its path", () => {
  expect(() => parseSandbox({ spare: "no" }, "sandbox", fail)).toThrow(
    'sandbox.spare: expected true or false, got "no"',
  );
  expect(() => parseSandbox({ spares: 1 }, "sandbox", fail)).toThrow(
    "one of limits, max_limits, uid, gid, pass_env, spare",
  );
});
