/**
 * The memory cgroup bounds a plugin as a whole: a plugin whose children each stay under their own
 * RLIMIT_DATA but together hold more than the plugin's memory limit is ended by the cgroup's OOM
 * killer, STATUS goes to ERROR with MESSAGE naming the memory limit, and nothing of it is left.
 * Skipped (with the reason) where this host gives us no writable memory cgroup.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { cgroupBases } from "../../src/plugins/host/cgroup.ts";
import { defaultSandboxConfig } from "../../src/plugins/host/sandbox.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { processesWith } from "../helpers/procs.ts";
import {
  destroyEnv,
  type Env,
  fixtureRepo,
  makeEnv,
  pvValue,
  waitFor,
} from "../plugins/harness.ts";

const PYTHON = "/usr/bin/python3";
const memoryBase = cgroupBases().memory;
const skipReason =
  memoryBase === null
    ? "no writable memory cgroup on this host (needs a delegated cgroup v2 or root with v1 memory)"
    : !existsSync(PYTHON)
      ? `${PYTHON} missing (the hostile plugin's children)`
      : null;
if (skipReason !== null) console.log(`memory-cgroup.test.ts skipped: ${skipReason}`);

const LIMIT_MIB = 384;
const TAG = `memhog-${Math.random().toString(36).slice(2, 10)}`;

let env: Env;
const repos: TestRepo[] = [];

beforeAll(async () => {
  if (skipReason !== null) return;
  env = await makeEnv({
    config: {
      sandbox: {
        ...defaultSandboxConfig(),
        limits: { ...defaultSandboxConfig().limits, memoryMiB: LIMIT_MIB },
      },
    },
  });
});

afterAll(async () => {
  if (env !== undefined) await destroyEnv(env);
  for (const r of repos) await r.cleanup();
});

/** Plugin cgroups of this process under the memory base (one per live plugin process). */
function pluginCgroups(): string[] {
  if (memoryBase === null || !existsSync(memoryBase)) return [];
  return readdirSync(memoryBase, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => join(memoryBase, d.name));
}

test.skipIf(skipReason !== null)(
  "children that together pass the memory limit: the cgroup ends the plugin, MESSAGE names the limit",
  async () => {
    const good = await fixtureRepo("counter");
    repos.push(good);
    expect((await env.controller.add({ name: "good", kind: "task", git_url: good.url })).ok).toBe(
      true,
    );
    // Eight children of 96 MiB each: every one far below its RLIMIT_DATA, 768 MiB together.
    const child = `import time  # ${TAG}\nb = b"x" * (96 << 20)\ntime.sleep(120)`;
    const bad = await createRepo({
      files: {
        "hog.ts": `import { spawn } from "node:child_process";
import { TaskBase } from "iocmng";
export default class Hog extends TaskBase {
  started = false;
  initialize() {}
  execute() {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < 8; i++) spawn(${JSON.stringify(PYTHON)}, ["-c", ${JSON.stringify(child)}], { stdio: "ignore" });
  }
  cleanup() {}
}
`,
        "config.yaml": "restart: never\nparameters:\n  interval: 0.2\n",
      },
    });
    repos.push(bad);
    expect((await env.controller.add({ name: "hog", kind: "task", git_url: bad.url })).ok).toBe(
      true,
    );
    const message = await waitFor(
      () => {
        const m = String(pvValue(env, "TEST:HOG:MESSAGE"));
        return /memory limit/.test(m) ? m : undefined;
      },
      "the memory cgroup to end the hog",
      60_000,
    );
    expect(message).toContain(`${LIMIT_MIB} MiB`);
    expect(message).toContain("(cgroup)");
    expect(env.controller.get("task", "hog")?.status).toBe("ERROR");
    expect(env.controller.get("task", "hog")?.running).toBe(false);
    // All its children died with it; the good task runs on.
    await waitFor(() => processesWith(TAG).length === 0, "the hog's children to be gone");
    const c = Number(pvValue(env, "TEST:GOOD:CYCLE_COUNT"));
    await waitFor(() => Number(pvValue(env, "TEST:GOOD:CYCLE_COUNT")) > c + 2, "good cycles");
    // Removal leaves no cgroup behind but the good plugin's (and the spare's).
    const before = pluginCgroups().length;
    expect((await env.controller.remove("task", "hog")).ok).toBe(true);
    expect(pluginCgroups().length).toBeLessThanOrEqual(before);
    expect((await env.controller.remove("task", "good")).ok).toBe(true);
    await env.controller.shutdown();
    await waitFor(() => pluginCgroups().length === 0, "every plugin cgroup removed");
  },
  120_000,
);
