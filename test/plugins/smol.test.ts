/**
 * Plugin processes run in Bun's small-heap mode (`--smol` through BUN_OPTIONS, set by pluginEnv in
 * src/plugins/host/sandbox.ts) and with the server's allocator settings (src/common/allocator.ts):
 * the plugin's own process reports both, whether it took the spare or was started for it. Real plugin from a real git repository, real processes.
 */
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { defaultSandboxConfig } from "../../src/plugins/host/sandbox.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, makeEnv } from "./harness.ts";

setDefaultTimeout(60_000);

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const JOB = `import { JobBase, JobResult } from "iocmng";
export class Flags extends JobBase {
  initialize(): void {}
  async execute(): Promise<JobResult> {
    const env = process.env;
    return JobResult.ok(
      {
        execArgv: process.execArgv,
        options: env.BUN_OPTIONS ?? null,
        allocator: [env.MIMALLOC_PURGE_DELAY ?? null, env.MIMALLOC_PURGE_HOLES_MIN_INTERVAL ?? null],
      },
      "flags",
    );
  }
}
`;

async function flagsOf(spare: boolean): Promise<unknown> {
  const e: Env = await makeEnv({ config: { sandbox: { ...defaultSandboxConfig(), spare } } });
  cleanups.push(() => destroyEnv(e));
  await e.controller.restore();
  const repo: TestRepo = await createRepo({ files: { "j.ts": JOB } });
  cleanups.push(() => repo.cleanup());
  expect((await e.controller.add({ name: "flags", kind: "job", git_url: repo.url })).ok).toBe(true);
  const r = await e.controller.runJob("flags");
  expect(r.ok).toBe(true);
  return r.ok ? r.value.data : null;
}

interface Flags {
  execArgv: string[];
  options: string;
  allocator: [string | null, string | null];
}

test("a plugin process started for its plugin runs with --smol and the allocator settings", async () => {
  const data = (await flagsOf(false)) as Flags;
  expect(data.execArgv).toContain("--smol");
  expect(data.options).toBe("--smol");
  // src/common/allocator.ts: the test runner has neither variable, so the defaults of ALLOCATOR_ENV.
  expect(data.allocator).toEqual(["1000", "1000"]);
});

test("a plugin that takes the spare process runs with --smol and the allocator settings", async () => {
  const data = (await flagsOf(true)) as Flags;
  expect(data.execArgv).toContain("--smol");
  expect(data.allocator).toEqual(["1000", "1000"]);
});
