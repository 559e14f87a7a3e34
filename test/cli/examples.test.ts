import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validatePluginSource } from "../../src/plugins/controller.ts";
import { serverEnv, startServe } from "../binary/serve-process.ts";
import { expectSmokePassed, makeExamplesRepo, runSmoke } from "../binary/smoke.ts";

const ROOT = join(import.meta.dir, "..", "..");
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "iocmng-examples-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("examples/", () => {
  const cases = [
    ["ramp-task", "task", "Ramp", 3 + 5],
    ["snapshot-task", "task", "Snapshot", 4 + 5],
    ["diagnostics-job", "job", "Diagnostics", 2 + 2],
  ] as const;
  for (const [dir, kind, cls, pvs] of cases) {
    test(`${dir} passes the full validation pipeline as a ${kind}`, async () => {
      const report = await validatePluginSource({ dir: join(ROOT, "examples", dir), kind });
      expect(report.message).toBe("plugin is valid");
      expect(report.ok).toBe(true);
      const step = (name: string) => report.steps.find((s) => s.step === name)?.message;
      expect(step("inheritance")).toContain(cls);
      expect(step("pvs")).toBe(`${pvs} PVs`);
    });
  }

  test("the same examples from a git repo, through `bun src/main.ts serve` (the sources' smoke)", async () => {
    const repo = makeExamplesRepo(join(work, "repo"));
    const { env, httpPort, caPort } = await serverEnv({
      IOCMNG_PLUGINS_DIR: join(work, "plugins"),
      IOCMNG_STATE_DIR: join(work, "state"),
      IOCMNG_PREFIX: "SRCSMOKE",
    });
    const sp = await startServe([process.execPath, join(ROOT, "src/main.ts"), "serve"], {
      env,
      httpPort,
      caPort,
    });
    try {
      const r = await runSmoke(sp, `file://${repo}`, "SRCSMOKE");
      expectSmokePassed(r);
    } finally {
      expect(await sp.stop()).toBe(0);
    }
  }, 240_000);
});

describe("iocmng validate on git URLs", () => {
  function validate(args: string[]) {
    const p = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), "validate", ...args], {
      stdout: "pipe",
      stderr: "pipe",
    });
    return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
  }

  test("a file:// repository with --path and --branch: clone step shown, exit 0", () => {
    const repo = makeExamplesRepo(join(work, "vrepo"));
    const r = validate([`file://${repo}`, "--path", "examples/snapshot-task", "--branch", "main"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ok {3}clone: /);
    expect(r.out).toContain("valid task: ");
  });

  test("a missing branch fails at the clone step, exit 1", () => {
    const repo = makeExamplesRepo(join(work, "vrepo2"));
    const r = validate([`file://${repo}`, "--branch", "no-such-branch", "--json"]);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out);
    expect(report.ok).toBe(false);
    expect(report.failedStep).toBe("clone");
  });

  test("hostile sources never reach git as options or ext:: commands", () => {
    const marker = join(work, "pwned");
    const ext = validate([`ext::sh -c touch% ${marker}`]);
    expect(ext.code).toBe(1);
    expect(ext.err).toContain("no such directory");
    const opt = validate([`--upload-pack=touch ${marker}`]);
    expect(opt.code).toBe(2);
    expect(opt.err).toContain("unknown option");
    const path = validate([join(ROOT, "examples"), "--path", "../../etc"]);
    expect(path.code).toBe(1);
    expect(path.err).toContain("step 'path' failed");
    expect(existsSync(marker)).toBe(false);
  });
});
