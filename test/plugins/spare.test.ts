/**
 * The spare plugin process (src/plugins/host/spare.ts): none at boot; an add starts one and runs in
 * it, and a new spare started behind it serves the next add; a spare no add asked for lately ends
 * until the next add; other limits get a process of their own;
 * a killed spare is replaced and harms nobody; a plugin cannot read the spare's environment or
 * memory; a spare started before a variable became hidden is never handed out; `spare: false`
 * starts none. Real plugins from real git repositories, real processes.
 */
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import pino from "pino";
import { alive } from "../../src/plugins/host/proc.ts";
import { defaultSandboxConfig } from "../../src/plugins/host/sandbox.ts";
import { SpareHost } from "../../src/plugins/host/spare.ts";
import { DEFAULT_HOST_TIMINGS, type HostEvents } from "../../src/plugins/host.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import {
  destroyEnv,
  type Env,
  fixtureFiles,
  fixtureRepo,
  makeEnv,
  pvValue,
  waitFor,
} from "./harness.ts";

setDefaultTimeout(60_000);

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function env(config: Parameters<typeof makeEnv>[0] = {}): Promise<Env> {
  const e = await makeEnv(config);
  cleanups.push(() => destroyEnv(e));
  return e;
}

async function repo(r: Promise<TestRepo>): Promise<TestRepo> {
  const got = await r;
  cleanups.push(() => got.cleanup());
  return got;
}

interface Line {
  msg: string;
  plugin?: string;
  pid?: number;
  home?: string;
}

function lines(e: Env): Line[] {
  return e.logs.map((l) => JSON.parse(l) as Line);
}

/** The pid of the current spare (started, alive, not handed out), from the debug log. */
function sparePid(e: Env): number | undefined {
  const all = lines(e);
  const taken = new Set(
    all.filter((l) => l.msg === "plugin runs in the spare process").map((l) => l.pid),
  );
  return all
    .filter((l) => l.plugin === "(spare)" && l.msg === "plugin process started")
    .map((l) => l.pid as number)
    .filter((pid) => !taken.has(pid) && alive(pid))
    .pop();
}

/** The pid plugin `name` runs in, and whether it is the spare it took. */
function hostOf(e: Env, name: string): { pid: number; spare: boolean } | undefined {
  const l = lines(e).find(
    (x) =>
      x.plugin === name &&
      (x.msg === "plugin runs in the spare process" || x.msg === "plugin process started"),
  );
  return l ? { pid: l.pid as number, spare: l.msg.includes("spare") } : undefined;
}

function uidOf(pid: number): number {
  const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1]);
}

/** Whether the log shows a spare process started (at any time). */
const anySpare = (e: Env): boolean =>
  lines(e).some((l) => l.plugin === "(spare)" && l.msg === "plugin process started");

/** A booted server after its first add ("a", a counter): the spare started behind that add. */
async function afterFirstAdd(): Promise<{ e: Env; spare: number }> {
  const e = await env();
  await e.controller.restore();
  const first = await repo(fixtureRepo("counter"));
  expect((await e.controller.add({ name: "a", kind: "task", git_url: first.url })).ok).toBe(true);
  return { e, spare: await waitFor(() => sparePid(e), "the spare behind the first add") };
}

test("no spare at boot; an add starts one and runs in it; the next spare serves the next add", async () => {
  const e = await env();
  await e.controller.restore();
  // An IOC that only restored its plugins keeps no idle process.
  expect(anySpare(e)).toBe(false);
  const r = await repo(fixtureRepo("counter"));
  expect((await e.controller.add({ name: "a", kind: "task", git_url: r.url })).ok).toBe(true);
  // The add started the spare before cloning and took it once its clone was there.
  const first = hostOf(e, "a");
  expect(first?.spare).toBe(true);
  const spare = first?.pid as number;
  expect(e.controller.pidOf("a")).toBe(spare);
  // It runs the plugin, confined as any plugin process (uid 65534 when the tests run as root).
  const c = Number(pvValue(e, "TEST:A:CYCLE_COUNT"));
  await waitFor(() => Number(pvValue(e, "TEST:A:CYCLE_COUNT")) > c + 2, "cycles in the spare");
  if (process.getuid?.() === 0) expect(uidOf(spare)).toBe(65534);
  const next = await waitFor(() => sparePid(e), "the next spare");
  expect(next).not.toBe(spare);
  // The following add runs in the spare started behind the first.
  expect((await e.controller.add({ name: "b", kind: "task", git_url: r.url })).ok).toBe(true);
  expect(hostOf(e, "b")).toEqual({ pid: next, spare: true });
  const third = await waitFor(() => sparePid(e), "a third spare");
  // Removing a plugin ends the process it took; the new spare stays.
  expect((await e.controller.remove("task", "a")).ok).toBe(true);
  await waitFor(() => !alive(spare), "the taken spare to end with its plugin");
  expect(alive(third)).toBe(true);
});

test("a spare no add asked for within the idle time ends; the next add starts one again", async () => {
  const e = await env({ timings: { spareIdleMs: 500 } });
  await e.controller.restore();
  const r = await repo(fixtureRepo("counter"));
  expect((await e.controller.add({ name: "one", kind: "task", git_url: r.url })).ok).toBe(true);
  // The spare left unused (the one behind the add; the add's own if the add took longer than the
  // idle time) is ended, and none replaces it.
  const idle = await waitFor(
    () => lines(e).find((l) => l.msg === "spare plugin process retired: no add")?.pid,
    "the idle spare to be retired",
  );
  expect(lines(e).some((l) => l.plugin === "(spare)" && l.pid === idle)).toBe(true);
  await waitFor(() => !alive(idle), "the retired spare's process to end");
  expect(sparePid(e)).toBeUndefined();
  // The plugin that took the first spare is untouched.
  expect(e.controller.get("task", "one")?.status).toBe("RUN");
  // The next add starts a spare again and runs in it.
  expect((await e.controller.add({ name: "two", kind: "task", git_url: r.url })).ok).toBe(true);
  const two = hostOf(e, "two");
  expect(two?.spare).toBe(true);
  expect(two?.pid).not.toBe(idle);
});

test("a plugin asking for other limits gets a process of its own; the spare stays", async () => {
  const { e, spare } = await afterFirstAdd();
  const files = await fixtureFiles("counter");
  files["config.yaml"] = `limits:\n  memory_mib: 640\n${files["config.yaml"]}`;
  const r = await repo(createRepo({ files }));
  expect((await e.controller.add({ name: "big", kind: "task", git_url: r.url })).ok).toBe(true);
  const host = hostOf(e, "big");
  expect(host?.spare).toBe(false);
  expect(host?.pid).not.toBe(spare);
  expect(sparePid(e)).toBe(spare);
});

test("a killed spare harms nobody: it is replaced, and adds work meanwhile", async () => {
  const { e, spare } = await afterFirstAdd();
  process.kill(spare, "SIGKILL");
  await waitFor(
    () => lines(e).some((l) => l.msg === "spare plugin process ended unused: replacing it"),
    "the spare's death to be noticed",
  );
  const r = await repo(fixtureRepo("counter"));
  expect((await e.controller.add({ name: "after", kind: "task", git_url: r.url })).ok).toBe(true);
  expect(e.controller.get("task", "after")?.status).toBe("RUN");
  const next = await waitFor(() => sparePid(e), "a new spare");
  expect(next).not.toBe(spare);
  // Killed again once ready: the wait doubles (it resets only when a spare serves an add), so a
  // plugin killing every spare cannot make the server start one every second.
  await waitFor(
    () => lines(e).some((l) => l.msg === "spare plugin process ready" && l.pid === next),
    "the new spare to be ready",
  );
  process.kill(next, "SIGKILL");
  const retries = await waitFor(() => {
    const r = lines(e)
      .filter((l) => l.msg === "spare plugin process ended unused: replacing it")
      .map((l) => (l as Line & { retryMs?: number }).retryMs);
    return r.length === 2 ? r : undefined;
  }, "the second death to be noticed");
  expect(retries).toEqual([1000, 2000]);
});

test("a plugin can read neither the environment nor the memory of the spare", async () => {
  const e = await env();
  await e.controller.restore();
  const r = await repo(
    createRepo({
      files: {
        "peek.ts": `import { openSync, readFileSync, readSync } from "node:fs";
import { TaskBase } from "iocmng";
const code = (f: () => unknown): string => { try { f(); return "read"; } catch (e) { return String((e as { code?: string }).code); } };
export default class Peek extends TaskBase {
  initialize() {}
  execute() {
    const pid = Number(this.parameters.spare);
    this.setPv("ENVIRON", code(() => readFileSync("/proc/" + pid + "/environ")));
    this.setPv("MEM", code(() => readSync(openSync("/proc/" + pid + "/mem", "r"), Buffer.alloc(16), 0, 16, 4096)));
  }
  cleanup() {}
}
`,
        "config.yaml":
          // Other limits: the peeker does not take the spare it peeks at.
          "limits:\n  memory_mib: 640\nparameters:\n  interval: 0.1\npvs:\n  outputs:\n    ENVIRON:\n      type: string\n      value: ''\n    MEM:\n      type: string\n      value: ''\n",
      },
    }),
  );
  // The first add takes the spare: the plugin peeks at the one started behind it.
  const first = await repo(fixtureRepo("counter"));
  expect((await e.controller.add({ name: "first", kind: "task", git_url: first.url })).ok).toBe(
    true,
  );
  const target = await waitFor(() => sparePid(e), "the next spare");
  expect(
    (
      await e.controller.add({
        name: "peek",
        kind: "task",
        git_url: r.url,
        parameters: { spare: target },
      })
    ).ok,
  ).toBe(true);
  await waitFor(() => pvValue(e, "TEST:PEEK:MEM") !== "", "the peek");
  expect(pvValue(e, "TEST:PEEK:ENVIRON")).toBe("EACCES");
  expect(pvValue(e, "TEST:PEEK:MEM")).toBe("EACCES");
  expect(hostOf(e, "peek")?.spare).toBe(false);
  expect(sparePid(e)).toBe(target);
});

test("a spare whose environment differs from a new process's is never handed out", async () => {
  const logs: string[] = [];
  const log = pino({ level: "debug" }, { write: (s: string) => void logs.push(s) });
  const hidden: string[] = ["IOCMNG_TEST_A"];
  // The operator passes IOCMNG_TEST_B to plugins; later it becomes a token variable (hidden).
  process.env.IOCMNG_TEST_B = "token";
  cleanups.push(async () => {
    delete process.env.IOCMNG_TEST_B;
  });
  const sandbox = { ...defaultSandboxConfig(), passEnv: ["IOCMNG_TEST_B"] };
  const spares = new SpareHost(log, sandbox, () => hidden);
  cleanups.push(async () => spares.close());
  spares.fill();
  const first = await waitFor(() => spares.pid ?? undefined, "the spare");
  const events: HostEvents = {
    onSet: () => {},
    onAddPv: async () => undefined,
    onUnresponsive: () => {},
    onResponsive: () => {},
    onExit: () => {},
  };
  const opts = { log, events, timings: DEFAULT_HOST_TIMINGS, sandbox, name: "x" };
  hidden.push("IOCMNG_TEST_B");
  expect(spares.take({ ...opts, hiddenEnv: [...hidden] })).toBeNull();
  await waitFor(() => !alive(first), "the stale spare to end");
  // Its replacement hides both, so it fits.
  const second = await waitFor(() => spares.pid ?? undefined, "a new spare");
  expect(second).not.toBe(first);
  const host = spares.take({ ...opts, hiddenEnv: [...hidden] });
  expect(host?.pid).toBe(second);
  host?.terminate();
  // A passed variable changed since the spare started: replaced too.
  const third = await waitFor(() => spares.pid ?? undefined, "a third spare");
  const was = process.env.EPICS_CA_ADDR_LIST;
  process.env.EPICS_CA_ADDR_LIST = "127.0.0.9";
  cleanups.push(async () => {
    if (was === undefined) delete process.env.EPICS_CA_ADDR_LIST;
    else process.env.EPICS_CA_ADDR_LIST = was;
  });
  expect(spares.take({ ...opts, hiddenEnv: [...hidden] })).toBeNull();
  await waitFor(() => !alive(third), "the outdated spare to end");
});

test("sandbox.spare: false starts no spare", async () => {
  const e = await env({ config: { sandbox: { ...defaultSandboxConfig(), spare: false } } });
  await e.controller.restore();
  const r = await repo(fixtureRepo("counter"));
  expect((await e.controller.add({ name: "solo", kind: "task", git_url: r.url })).ok).toBe(true);
  expect(hostOf(e, "solo")?.spare).toBe(false);
  expect(lines(e).some((l) => l.plugin === "(spare)")).toBe(false);
});

test("a spare handed over while still starting becomes ready and is logged under its plugin", async () => {
  const logs: string[] = [];
  const log = pino({ level: "debug" }, { write: (s: string) => void logs.push(s) });
  const sandbox = defaultSandboxConfig();
  const spares = new SpareHost(log, sandbox, () => []);
  cleanups.push(async () => spares.close());
  spares.fill();
  const events: HostEvents = {
    onSet: () => {},
    onAddPv: async () => undefined,
    onUnresponsive: () => {},
    onResponsive: () => {},
    onExit: () => {},
  };
  // At once: the spare has no process yet.
  expect(spares.pid).toBeNull();
  const host = spares.take({
    log: log.child({ plugin: "early" }),
    events,
    timings: DEFAULT_HOST_TIMINGS,
    sandbox,
    hiddenEnv: [],
    name: "early",
  });
  expect(host).not.toBeNull();
  cleanups.push(async () => host?.terminate());
  await host?.waitReady();
  const started = logs
    .map((l) => JSON.parse(l) as Line)
    .filter((l) => l.msg === "plugin process started" && l.pid === host?.pid);
  expect(started.map((l) => l.plugin)).toEqual(["early"]);
});
