/**
 * Crash containment: a plugin whose process ends by itself is shown in ERROR with the reason, is
 * restarted with backoff per its `restart:` policy (PV values kept), and is quarantined after too
 * many failures: listed, not started at the next boot, removable and restartable.
 */
import { afterEach, expect, test } from "bun:test";
import { PluginProcess } from "../../src/plugins/host/process-host.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, makeEnv, pvValue, waitFor } from "../plugins/harness.ts";

const FAST = {
  restartBaseMs: 50,
  restartMaxMs: 400,
  quarantineAfter: 3,
  quarantineWindowMs: 60_000,
};

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function env(): Promise<Env> {
  const e = await makeEnv({ timings: FAST });
  cleanups.push(() => destroyEnv(e));
  return e;
}

async function repo(code: string, config: string): Promise<TestRepo> {
  const r = await createRepo({ files: { "t.ts": code, "config.yaml": config } });
  cleanups.push(() => r.cleanup());
  return r;
}

const EXIT = "(process as unknown as { reallyExit(c: number): void }).reallyExit";

test("a crash is restarted with its PV values kept; the restarted process runs on", async () => {
  const e = await env();
  // Crashes once: it records CRASHED=1 first, which the restarted process finds in its PV.
  const r = await repo(
    `import { TaskBase } from "iocmng";
export class Once extends TaskBase {
  initialize() {}
  execute() {
    if (this.getPv("CRASHED") === 0) {
      this.setPv("CRASHED", 1);
      setTimeout(() => ${EXIT}(9), 200);
    }
  }
  cleanup() {}
}
`,
    "parameters:\n  interval: 0.05\npvs:\n  outputs:\n    CRASHED:\n      type: int\n      value: 0\n",
  );
  expect((await e.controller.add({ name: "once", kind: "task", git_url: r.url })).ok).toBe(true);
  await waitFor(() => pvValue(e, "TEST:ONCE:CRASHED") === 1, "the crash");
  const count = Number(pvValue(e, "TEST:ONCE:CYCLE_COUNT"));
  await waitFor(
    () =>
      e.logs.some((l) => l.includes("plugin process restarted")) &&
      Number(pvValue(e, "TEST:ONCE:CYCLE_COUNT")) > count + 3,
    "cycles of the restarted process",
  );
  expect(e.controller.get("task", "once")?.status).toBe("RUN");
  expect(e.controller.get("task", "once")?.running).toBe(true);
  expect(e.controller.get("task", "once")?.quarantined).toBeUndefined();
});

test("crashing at every start: quarantined after N tries, kept at boot without running", async () => {
  const e = await env();
  const r = await repo(
    `import { TaskBase } from "iocmng";
export class Crasher extends TaskBase {
  initialize() {}
  execute() { ${EXIT}(5); }
  cleanup() {}
}
`,
    "parameters:\n  interval: 0.05\n",
  );
  expect((await e.controller.add({ name: "crasher", kind: "task", git_url: r.url })).ok).toBe(true);
  const info = await waitFor(
    () =>
      e.controller.get("task", "crasher")?.quarantined
        ? e.controller.get("task", "crasher")
        : undefined,
    "quarantine",
  );
  expect(info.status).toBe("ERROR");
  expect(info.running).toBe(false);
  expect(String(pvValue(e, "TEST:CRASHER:MESSAGE"))).toContain("quarantined");
  // The next boot lists it without starting a process.
  await e.state.flush();
  await e.controller.shutdown();
  const live = PluginProcess.live;
  const e2 = await e.reopen();
  cleanups.push(() => destroyEnv(e2));
  await e2.controller.restore();
  const held = e2.controller.get("task", "crasher");
  expect(held?.quarantined).toContain("quarantined");
  expect(held?.running).toBe(false);
  expect(PluginProcess.live).toBe(live);
  expect(String(pvValue(e2, "TEST:CRASHER:MESSAGE"))).toContain("quarantined");
  // A REST restart retries it (re-clone) and clears the quarantine; DELETE removes it.
  const rs = await e2.controller.restart("crasher");
  expect(rs.ok).toBe(true);
  expect(e2.controller.get("task", "crasher")?.quarantined).toBeUndefined();
  expect((await e2.controller.remove("task", "crasher")).ok).toBe(true);
  expect(e2.controller.get("task", "crasher")).toBeUndefined();
});

test("restart: never leaves a crashed plugin in ERROR without a process", async () => {
  const e = await env();
  const r = await repo(
    `import { TaskBase } from "iocmng";
export class Never extends TaskBase {
  initialize() {}
  execute() { ${EXIT}(4); }
  cleanup() {}
}
`,
    "restart: never\nparameters:\n  interval: 0.05\n",
  );
  const live = PluginProcess.live;
  expect((await e.controller.add({ name: "never", kind: "task", git_url: r.url })).ok).toBe(true);
  await waitFor(() => e.controller.get("task", "never")?.running === false, "the crash");
  await Bun.sleep(500);
  expect(PluginProcess.live).toBe(live);
  expect(String(pvValue(e, "TEST:NEVER:MESSAGE"))).toContain("code 4");
  expect(e.controller.get("task", "never")?.quarantined).toBeUndefined();
});
