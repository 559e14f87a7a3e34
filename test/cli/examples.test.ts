import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validatePluginSource } from "../../src/plugins/controller.ts";
import { serverEnv, startServe } from "../binary/serve-process.ts";
import { makeExamplesRepo, runSmoke } from "../binary/smoke.ts";

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
      expect(r.setpointPutOk).toBe(true);
      expect(r.reading).toBe(12.5);
      expect((r.run.body.result as { success: boolean }).success).toBe(true);
      expect(r.jobStatusPv).toBe("SUCCESS");
      expect(r.removeTask).toBe(200);
      expect(r.removeJob).toBe(200);
    } finally {
      expect(await sp.stop()).toBe(0);
    }
  }, 240_000);
});
