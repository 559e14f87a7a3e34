/**
 * The runtime with real CA peers: pyepics (libca) as the operator against our CA server, and a
 * plugin using `this.ca` (libca through bun:ffi, inside its Worker) to read and write PVs.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { type CaHarness, runPy, startCaServer } from "../helpers/ca-harness.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, fixtureRepo, makeEnv, pvValue, waitFor } from "./harness.ts";

setDefaultTimeout(120_000);

let ca: CaHarness;
let env: Env;
const repos: TestRepo[] = [];
beforeAll(async () => {
  ca = await startCaServer();
  env = await makeEnv({ registry: ca.registry });
});
afterAll(async () => {
  await destroyEnv(env);
  await ca.stop();
  for (const r of repos) await r.cleanup();
});

test("caput -c on RUN returns only when execute() has finished", async () => {
  const repo = await fixtureRepo("triggered");
  repos.push(repo);
  const r = await env.controller.add({
    name: "trig",
    kind: "task",
    git_url: repo.url,
    parameters: { delay: 700 },
  });
  expect(r.ok).toBe(true);
  const out = (await runPy(
    ca.port,
    `
epics.caget("TEST:TRIG:DONE", timeout=10)
before = epics.caget("TEST:TRIG:DONE", use_monitor=False)
ok = epics.caput("TEST:TRIG:RUN", 1, wait=True, timeout=30)
after = epics.caget("TEST:TRIG:DONE", use_monitor=False)
run = epics.caget("TEST:TRIG:RUN", use_monitor=False)
out({"ok": ok, "before": before, "after": after, "run": run})
`,
  )) as Record<string, unknown>;
  expect(out.ok).toBe(1);
  expect(out.before).toBe(0);
  // Put completion came after execute(): its output was already posted when caput returned.
  expect(out.after).toBe(1);
  expect(out.run).toBe(0);
});

test("a CA write refused by onPvWrite fails the put and leaves the value", async () => {
  const repo = await fixtureRepo("counter");
  repos.push(repo);
  expect((await env.controller.add({ name: "cnt", kind: "task", git_url: repo.url })).ok).toBe(
    true,
  );
  const out = (await runPy(
    ca.port,
    `
pv = epics.PV("TEST:CNT:SETPOINT")
pv.wait_for_connection(timeout=10)
pv.put(3.5, wait=True, timeout=10)
good = epics.caget("TEST:CNT:SETPOINT", use_monitor=False)
pv.put(-2, wait=True, timeout=10)
bad = epics.caget("TEST:CNT:SETPOINT", use_monitor=False)
out({"good": good, "bad": bad})
`,
  )) as Record<string, unknown>;
  expect(out.good).toBe(3.5);
  expect(out.bad).toBe(3.5);
  await waitFor(() => pvValue(env, "TEST:CNT:READBACK") === 3.5, "task saw the CA write");
  expect((await env.controller.remove("task", "cnt")).ok).toBe(true);
});

test("a plugin reads and writes other IOCs' PVs through this.ca", async () => {
  ca.registry.add({ name: "OTHER:IOC:TEMP", kind: "double", initial: 21.5 });
  ca.registry.add({ name: "OTHER:IOC:SETPT", kind: "double", writable: true, initial: 0 });
  const repo = await createRepo({
    files: {
      "j.ts": `import { JobBase, JobResult } from "iocmng";
export class Copier extends JobBase {
  initialize(): void {}
  async execute(): Promise<JobResult> {
    const r = await this.ca.get("OTHER:IOC:TEMP", { timeout: 10 });
    await this.ca.put("OTHER:IOC:SETPT", Number(r.value) * 2, { wait: true, timeout: 10 });
    return JobResult.ok({ temp: r.value }, "copied");
  }
}
`,
    },
  });
  repos.push(repo);
  // libca in the plugin's Worker reads EPICS_CA_* from the environment it inherits.
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(ca.env)) {
    if (!k.startsWith("EPICS_")) continue;
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    expect((await env.controller.add({ name: "copier", kind: "job", git_url: repo.url })).ok).toBe(
      true,
    );
    const r = await env.controller.runJob("copier");
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.message).toBe("copied");
      expect(r.value.data).toEqual({ temp: 21.5 });
    }
    expect(pvValue(env, "OTHER:IOC:SETPT")).toBe(43);
    expect((await env.controller.remove("job", "copier")).ok).toBe(true);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});
