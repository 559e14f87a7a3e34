/**
 * Time limits of the runtime: an initialize() that never finishes fails the `start` step (and
 * leaves nothing), an onPvWrite that never settles refuses the write with a clear reason instead of
 * holding the PV's writes forever, and a late one does not sneak its value in afterwards.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PluginProcess } from "../../src/plugins/host/process-host.ts";
import { type CaHarness, runPy, startCaServer } from "../helpers/ca-harness.ts";
import { createRepo, type RepoFile, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, makeEnv, pvValue, rejectionOf, waitFor } from "./harness.ts";

setDefaultTimeout(60_000);

const INIT_MS = 800;
const WRITE_MS = 800;

let ca: CaHarness;
let env: Env;
const repos: TestRepo[] = [];

beforeAll(async () => {
  ca = await startCaServer();
  env = await makeEnv({
    registry: ca.registry,
    timings: { initTimeoutMs: INIT_MS, writeTimeoutMs: WRITE_MS },
  });
});
afterAll(async () => {
  await destroyEnv(env);
  await ca.stop();
  for (const r of repos) await r.cleanup();
});

async function repo(files: Record<string, RepoFile>): Promise<TestRepo> {
  const r = await createRepo({ files });
  repos.push(r);
  return r;
}

async function expectStartFailure(name: string, src: string, messagePart: string): Promise<void> {
  const r = await repo({ "index.ts": src });
  const before = PluginProcess.live;
  const res = await env.controller.add({ name, kind: "task", git_url: r.url });
  expect(res.ok).toBe(false);
  if (res.ok) return;
  expect(res.code as number).toBe(422);
  expect(res.validation?.failedStep).toBe("start");
  expect(res.validation?.steps.at(-1)).toMatchObject({ step: "start", ok: false });
  expect(res.message).toContain(messagePart);
  const prefix = `TEST:${name.toUpperCase()}:`;
  expect([...env.registry.names()].filter((n) => n.startsWith(prefix))).toEqual([]);
  expect(PluginProcess.live).toBe(before);
  expect(existsSync(join(env.config.pluginsDir, name))).toBe(false);
  expect(env.controller.get("task", name)).toBeUndefined();
}

test("start: an initialize() that never settles fails the start step after its limit", async () => {
  await expectStartFailure(
    "never",
    'import { TaskBase } from "iocmng";\nexport class Never extends TaskBase { initialize() { return new Promise<void>(() => {}); } execute() {} cleanup() {} }\n',
    `initialize() did not finish within ${INIT_MS} ms`,
  );
});

test("start: an initialize() spinning synchronously fails the start step too", async () => {
  await expectStartFailure(
    "spinner",
    'import { TaskBase } from "iocmng";\nexport class Spin extends TaskBase { initialize() { while (true) {} } execute() {} cleanup() {} }\n',
    "no answer from the plugin",
  );
});

const STALL_SRC = `import { TaskBase } from "iocmng";
export class Stall extends TaskBase {
  initialize() {}
  execute() { this.setPv("SEEN", Number(this.getPv("SP"))); }
  cleanup() {}
  onPvWrite(_name: string, value: unknown) {
    if (Number(value) === 13) return new Promise<void>(() => {});
    if (Number(value) === 14) {
      // Settles, but only well after the limit: too late to be accepted.
      return new Promise<void>((ok) => setTimeout(() => { this.setPv("LATE", 1); ok(); }, ${WRITE_MS * 2}));
    }
  }
}
`;
const STALL_CONFIG = `parameters:
  interval: 0.05
pvs:
  inputs:
    SP:
      type: float
      value: 1
  outputs:
    SEEN:
      type: float
    LATE:
      type: int
`;

test("onPvWrite that never settles: the put is refused with the reason, later writes work", async () => {
  const r = await repo({ "index.ts": STALL_SRC, "config.yaml": STALL_CONFIG });
  expect((await env.controller.add({ name: "stall", kind: "task", git_url: r.url })).ok).toBe(true);
  const sp = env.registry.get("TEST:STALL:SP");
  const why = await rejectionOf(sp?.write(13));
  expect(why).toContain(`onPvWrite("SP") did not finish within ${WRITE_MS} ms`);
  expect(pvValue(env, "TEST:STALL:SP")).toBe(1);
  // Through a real CA client: the hung write fails, the PV keeps its value, the next write goes
  // through (the channel's write queue was not held forever).
  const out = (await runPy(
    ca.port,
    `
pv = epics.PV("TEST:STALL:SP")
pv.wait_for_connection(timeout=10)
pv.put(13, wait=True, timeout=20)
after_hung = epics.caget("TEST:STALL:SP", use_monitor=False)
pv.put(5, wait=True, timeout=20)
after_good = epics.caget("TEST:STALL:SP", use_monitor=False)
out({"after_hung": after_hung, "after_good": after_good})
`,
  )) as Record<string, unknown>;
  expect(out).toEqual({ after_hung: 1, after_good: 5 });
  await waitFor(() => pvValue(env, "TEST:STALL:SEEN") === 5, "the plugin to see SP = 5");
  expect((await env.controller.remove("task", "stall")).ok).toBe(true);
});

test("onPvWrite settling after the limit: the refused value is not taken by the plugin", async () => {
  const r = await repo({ "index.ts": STALL_SRC, "config.yaml": STALL_CONFIG });
  expect((await env.controller.add({ name: "late", kind: "task", git_url: r.url })).ok).toBe(true);
  const sp = env.registry.get("TEST:LATE:SP");
  expect(await rejectionOf(sp?.write(14))).toContain("did not finish within");
  await waitFor(() => pvValue(env, "TEST:LATE:LATE") === 1, "the late handler to settle");
  // Two more cycles after it settled: the plugin's own view of SP is still the old value.
  const cycles = Number(pvValue(env, "TEST:LATE:CYCLE_COUNT"));
  await waitFor(
    () => Number(pvValue(env, "TEST:LATE:CYCLE_COUNT")) >= cycles + 2,
    "two more cycles",
  );
  expect(pvValue(env, "TEST:LATE:SEEN")).toBe(1);
  expect(pvValue(env, "TEST:LATE:SP")).toBe(1);
  expect((await env.controller.remove("task", "late")).ok).toBe(true);
});

test("shutdown kills a clone in progress: the add fails at once and leaves nothing", async () => {
  const own = await makeEnv();
  // A TLS "server" that accepts and never answers: git waits on it until killed.
  let connected: () => void = () => {};
  let closed: () => void = () => {};
  const gitConnected = new Promise<void>((ok) => {
    connected = ok;
  });
  const gitGone = new Promise<void>((ok) => {
    closed = ok;
  });
  const tarpit = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: { open: () => connected(), data() {}, close: () => closed() },
  });
  try {
    const adding = own.controller.add({
      name: "slowclone",
      kind: "task",
      git_url: `https://127.0.0.1:${tarpit.port}/never.git`,
    });
    await gitConnected;
    await own.controller.shutdown();
    const r = await adding;
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.validation?.failedStep).toBe("clone");
      expect(r.message).toContain("shutting down");
    }
    await gitGone; // the git child was killed, not left behind
    expect(existsSync(join(own.config.pluginsDir, "slowclone"))).toBe(false);
  } finally {
    tarpit.stop(true);
    await destroyEnv(own);
  }
});

test("clone: a host that never answers fails the clone step at its time limit", async () => {
  const own = await makeEnv({ timings: { cloneTimeoutMs: 1000 } });
  let closed: () => void = () => {};
  const gitGone = new Promise<void>((ok) => {
    closed = ok;
  });
  const tarpit = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: { data() {}, close: () => closed() },
  });
  try {
    const r = await own.controller.add({
      name: "tarpit",
      kind: "task",
      git_url: `https://127.0.0.1:${tarpit.port}/never.git`,
    });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.validation?.failedStep).toBe("clone");
      expect(r.message).toContain("git timed out after 1 s");
    }
    await gitGone; // git and its https helper were both killed
    expect(existsSync(join(own.config.pluginsDir, "tarpit"))).toBe(false);
  } finally {
    tarpit.stop(true);
    await destroyEnv(own);
  }
});
