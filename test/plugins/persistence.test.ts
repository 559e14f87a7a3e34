/**
 * Lifecycle across "server restarts" (a second controller over the same directories): plugins come
 * back from their on-disk clones without the network, inputs come back from autosave before the
 * task starts; restart re-clones and keeps PV values; declared plugins load at boot.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { rm } from "node:fs/promises";
import { commitFiles, createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, fixtureFiles, makeEnv, pvValue, waitFor } from "./harness.ts";

setDefaultTimeout(60_000);

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

test("restore after restart: from the on-disk clone (repo deleted), with autosaved inputs", async () => {
  const env1 = await makeEnv();
  const repo = await createRepo({ files: await fixtureFiles("counter") });
  const r = await env1.controller.add({
    name: "keeper",
    kind: "task",
    git_url: repo.url,
    parameters: { interval: 0.05, extra: "x" },
  });
  expect(r.ok).toBe(true);
  await env1.registry.get("TEST:KEEPER:SETPOINT")?.write(42.5);
  // Simulated crash: no shutdown hooks beyond stopping the worker; only state files remain.
  await env1.state.flush();
  await env1.controller.shutdown();
  await repo.cleanup(); // no network / no origin: restore must use the clone on disk

  const env2 = await env1.reopen();
  cleanups.push(() => destroyEnv(env2));
  // onPlugins (the server starts its CA warm-up there) comes once, before the first plugin is back.
  const loadedAtOnPlugins: number[] = [];
  await env2.controller.restore({
    onPlugins: () => loadedAtOnPlugins.push(env2.controller.list("task").length),
  });
  expect(loadedAtOnPlugins).toEqual([0]);
  const info = env2.controller.get("task", "keeper");
  expect(info).toBeDefined();
  expect(info?.parameters).toMatchObject({ interval: 0.05, extra: "x" });
  expect(pvValue(env2, "TEST:KEEPER:SETPOINT")).toBe(42.5);
  // The task reads the restored SETPOINT through getPv.
  await waitFor(
    () => pvValue(env2, "TEST:KEEPER:READBACK") === 42.5,
    "READBACK from restored SETPOINT",
  );
  await waitFor(() => Number(pvValue(env2, "TEST:KEEPER:CYCLE_COUNT")) > 2, "cycling");

  // Removal forgets it for good: a third boot has nothing.
  expect((await env2.controller.remove("task", "keeper")).ok).toBe(true);
  await env2.state.flush();
  const env3 = await env2.reopen();
  let onPlugins = 0;
  await env3.controller.restore({ onPlugins: () => onPlugins++ });
  expect(env3.controller.list("task")).toEqual([]);
  // Nothing to restore: the server's warm-up waits for REST to listen instead.
  expect(onPlugins).toBe(0);
  await env3.close();
});

test("restart re-clones, runs the new code and keeps PV values", async () => {
  const env = await makeEnv();
  cleanups.push(() => destroyEnv(env));
  const files = await fixtureFiles("counter");
  const repo: TestRepo = await createRepo({ files });
  cleanups.push(() => repo.cleanup());
  expect((await env.controller.add({ name: "evolve", kind: "task", git_url: repo.url })).ok).toBe(
    true,
  );
  await env.registry.get("TEST:EVOLVE:SETPOINT")?.write(7);
  await waitFor(() => Number(pvValue(env, "TEST:EVOLVE:VALUE")) >= 3, "VALUE counting");
  const newCode = String(files["counter.ts"]).replace("this.n++;", "this.n += 1000;");
  await commitFiles(repo, { "counter.ts": newCode });
  const cyclesBefore = Number(pvValue(env, "TEST:EVOLVE:CYCLE_COUNT"));
  const r = await env.controller.restart("evolve");
  expect(r.ok).toBe(true);
  expect(pvValue(env, "TEST:EVOLVE:SETPOINT")).toBe(7);
  await waitFor(() => Number(pvValue(env, "TEST:EVOLVE:VALUE")) >= 1000, "new code runs");
  // CYCLE_COUNT goes on from where it was.
  expect(Number(pvValue(env, "TEST:EVOLVE:CYCLE_COUNT"))).toBeGreaterThan(cyclesBefore);

  // A broken push: restart fails with the step, the previous version is back and running.
  await commitFiles(repo, { "counter.ts": "export class {" });
  const bad = await env.controller.restart("evolve");
  expect(bad.ok).toBe(false);
  if (!bad.ok) {
    expect(bad.code).toBe(422);
    expect(bad.validation?.failedStep).toBe("syntax");
    expect(bad.message).toContain("previous version reloaded");
  }
  expect(env.controller.get("task", "evolve")?.running).toBe(true);
  expect(pvValue(env, "TEST:EVOLVE:SETPOINT")).toBe(7);
  const c = Number(pvValue(env, "TEST:EVOLVE:CYCLE_COUNT"));
  await waitFor(() => Number(pvValue(env, "TEST:EVOLVE:CYCLE_COUNT")) > c, "old version cycling");
  const unknown = await env.controller.restart("nope");
  expect(unknown.ok).toBe(false);
  if (!unknown.ok) expect(unknown.code).toBe(404);
});

test("plugins declared in the config load at boot and are not duplicated on the next boot", async () => {
  const repo = await createRepo({ files: await fixtureFiles("job") });
  cleanups.push(() => repo.cleanup());
  const env: Env = await makeEnv({
    config: {
      plugins: [{ name: "declared", kind: "job", git_url: repo.url, parameters: { plain: true } }],
    },
  });
  await env.controller.restore();
  expect(env.controller.get("job", "declared")).toBeDefined();
  const run = await env.controller.runJob("declared");
  expect(run.ok && run.value.message).toBe("plain");
  await env.state.flush();
  await env.controller.shutdown();
  const env2 = await env.reopen();
  cleanups.push(() => destroyEnv(env2));
  await env2.controller.restore();
  expect(env2.controller.list("job").map((p) => p.name)).toEqual(["declared"]);
});

test("a record whose clone vanished is reported, the rest of the boot goes on", async () => {
  const env = await makeEnv();
  const repo = await createRepo({ files: await fixtureFiles("counter") });
  cleanups.push(() => repo.cleanup());
  expect((await env.controller.add({ name: "a1", kind: "task", git_url: repo.url })).ok).toBe(true);
  expect((await env.controller.add({ name: "a2", kind: "task", git_url: repo.url })).ok).toBe(true);
  await env.state.flush();
  await env.controller.shutdown();
  await rm(`${env.config.pluginsDir}/a1`, { recursive: true, force: true });
  const env2 = await env.reopen();
  cleanups.push(() => destroyEnv(env2));
  await env2.controller.restore();
  expect(env2.controller.list("task").map((p) => p.name)).toEqual(["a2"]);
  expect(env2.logs.some((l) => l.includes("not restored") && l.includes("a1"))).toBe(true);
});

test("a plugin whose initialize() fails at boot stays listed in ERROR (not running) and can be restarted", async () => {
  const env = await makeEnv();
  const repo = await createRepo({
    files: {
      "t.ts": `import { TaskBase } from "iocmng";
export class Hw extends TaskBase {
  initialize() {
    if (process.env.EPICS_TEST_HW_OFFLINE === "1") throw new Error("hardware offline");
  }
  execute() {}
  cleanup() {}
}
`,
      "config.yaml": "parameters:\n  interval: 0.05\n",
    },
  });
  cleanups.push(() => repo.cleanup());
  expect((await env.controller.add({ name: "hw", kind: "task", git_url: repo.url })).ok).toBe(true);
  await env.state.flush();
  await env.controller.shutdown();
  process.env.EPICS_TEST_HW_OFFLINE = "1";
  let env2: Env;
  try {
    env2 = await env.reopen();
    cleanups.push(() => destroyEnv(env2));
    await env2.controller.restore();
  } finally {
    delete process.env.EPICS_TEST_HW_OFFLINE;
  }
  const info = env2.controller.get("task", "hw");
  expect(info?.status).toBe("ERROR");
  expect(info?.running).toBe(false);
  expect(info?.message).toContain("hardware offline");
  // ENABLE does not pretend it runs.
  await env2.registry.get("TEST:HW:ENABLE")?.write(1);
  expect(env2.controller.get("task", "hw")?.status).toBe("ERROR");
  // Once the hardware is back, a restart brings it up.
  const r = await env2.controller.restart("hw");
  expect(r.ok).toBe(true);
  expect(env2.controller.get("task", "hw")?.running).toBe(true);
  await waitFor(() => Number(pvValue(env2, "TEST:HW:CYCLE_COUNT")) > 0, "running after restart");
});
