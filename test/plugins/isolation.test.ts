/**
 * A plugin that blocks its thread, calls process.exit() or leaves unhandled rejections cannot stop
 * the server or other plugins: the watchdog flags it, removal ends it, everything else runs on.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { PluginProcess } from "../../src/plugins/host/process-host.ts";
import { type Env, fileEnv, fixtureRepo, pvValue, rejectionOf, waitFor } from "./harness.ts";

setDefaultTimeout(60_000);

let env: Env;
const repos = fileEnv((e) => {
  env = e;
});

async function add(name: string, fixture: string) {
  const repo = await fixtureRepo(fixture);
  repos.push(repo);
  const r = await env.controller.add({ name, kind: "task", git_url: repo.url });
  if (!r.ok) throw new Error(`add ${name}: ${r.message}`);
}

const TASK_STATES = ["INIT", "RUN", "PAUSED", "END", "ERROR"];

test("while(true) in execute(): watchdog ERROR, others keep running, remove ends it", async () => {
  await add("healthy", "counter");
  await add("hung", "hung");
  await waitFor(() => pvValue(env, "TEST:HUNG:CYCLES_SEEN") === 1, "hung task entered its loop");
  await waitFor(
    () => TASK_STATES[Number(pvValue(env, "TEST:HUNG:STATUS"))] === "ERROR",
    "watchdog STATUS ERROR",
  );
  expect(String(pvValue(env, "TEST:HUNG:MESSAGE"))).toContain("unresponsive");
  expect(env.controller.get("task", "hung")?.running).toBe(false);
  // The main thread and the other plugin are unaffected.
  const c0 = Number(pvValue(env, "TEST:HEALTHY:CYCLE_COUNT"));
  await waitFor(
    () => Number(pvValue(env, "TEST:HEALTHY:CYCLE_COUNT")) > c0 + 3,
    "healthy task keeps cycling",
  );
  // A client write to the hung plugin is refused rather than left hanging.
  expect(await rejectionOf(env.registry.get("TEST:HUNG:ENABLE")?.write(0))).toContain(
    "unresponsive",
  );
  // Writes to the healthy one still go through its worker.
  const setpoint = env.registry.get("TEST:HEALTHY:SETPOINT");
  await setpoint?.write(3);
  expect(setpoint?.value).toBe(3);

  const live = PluginProcess.live;
  const t0 = performance.now();
  const r = await env.controller.remove("task", "hung");
  const ms = performance.now() - t0;
  console.log(`removal of a hung task took ${ms.toFixed(0)} ms`);
  expect(r.ok).toBe(true);
  expect(PluginProcess.live).toBe(live - 1);
  expect(env.registry.get("TEST:HUNG:STATUS")).toBeUndefined();
  const c1 = Number(pvValue(env, "TEST:HEALTHY:CYCLE_COUNT"));
  await waitFor(() => Number(pvValue(env, "TEST:HEALTHY:CYCLE_COUNT")) > c1, "still cycling");
  expect((await env.controller.remove("task", "healthy")).ok).toBe(true);
});

test("a task that blocks in its very first execute(): the add still succeeds, removal ends it", async () => {
  const { createRepo } = await import("../helpers/git-repo.ts");
  const repo = await createRepo({
    files: {
      "t.ts":
        'import { TaskBase } from "iocmng";\nexport class Spin extends TaskBase { initialize() {} execute() { for (;;) {} } cleanup() {} }\n',
    },
  });
  repos.push(repo);
  const r = await env.controller.add({ name: "spin0", kind: "task", git_url: repo.url });
  expect(r.ok).toBe(true);
  await waitFor(
    () => TASK_STATES[Number(pvValue(env, "TEST:SPIN0:STATUS"))] === "ERROR",
    "watchdog STATUS ERROR",
  );
  expect((await env.controller.remove("task", "spin0")).ok).toBe(true);
});

test("a task blocked before the watchdog fires is still removed (terminate after cleanup timeout)", async () => {
  await add("hung2", "hung");
  await waitFor(() => pvValue(env, "TEST:HUNG2:CYCLES_SEEN") === 1, "hung2 ran once");
  await Bun.sleep(300); // now spinning in its second cycle
  // Remove right away: the worker does not answer "stop", so it is terminated.
  const r = await env.controller.remove("task", "hung2");
  expect(r.ok).toBe(true);
  expect(env.controller.get("task", "hung2")).toBeUndefined();
});

test("process.exit() and unhandled rejections in a plugin do not stop the server", async () => {
  // In a plain Bun process (see run-exiter.ts for why not in-process).
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "run-exiter.ts")], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) console.error(err);
  expect(code).toBe(0);
  const r = JSON.parse(out.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
  expect(r).toMatchObject({
    added: true,
    status: "ERROR",
    running: true,
    rejectionLogged: true,
    exitLogged: true,
    removed: true,
  });
  expect(String(r.message)).toContain("process.exit()");
  expect(Number(r.cycles)).toBeGreaterThanOrEqual(5);
});

test("a plugin whose process really dies is shown as ERROR and can be removed", async () => {
  const { createRepo } = await import("../helpers/git-repo.ts");
  // process.reallyExit (Bun's low-level exit) ends the plugin's process for real: the crash path.
  const repo = await createRepo({
    files: {
      "t.ts":
        'import { TaskBase } from "iocmng";\nexport class Dies extends TaskBase { initialize() {} execute() { if (this.cycleCount > 0) (process as unknown as { reallyExit(c: number): void }).reallyExit(7); } cleanup() {} }\n',
      "config.yaml": "parameters:\n  interval: 0.05\n",
    },
  });
  repos.push(repo);
  const r = await env.controller.add({ name: "dies", kind: "task", git_url: repo.url });
  expect(r.ok).toBe(true);
  await waitFor(() => env.controller.get("task", "dies")?.running === false, "worker ended");
  expect(env.controller.get("task", "dies")?.status).toBe("ERROR");
  expect(String(pvValue(env, "TEST:DIES:MESSAGE"))).toContain("exited (code 7)");
  expect((await env.controller.remove("task", "dies")).ok).toBe(true);
});

test("a plugin logging in a hot loop is rate-limited, and says how much was dropped", async () => {
  const { createRepo } = await import("../helpers/git-repo.ts");
  const repo = await createRepo({
    files: {
      "t.ts":
        'import { TaskBase } from "iocmng";\nexport class Chatty extends TaskBase { initialize() { for (let i = 0; i < 50000; i++) this.logger.info("line %d", i); } execute() {} cleanup() {} }\n',
      "config.yaml": "parameters:\n  interval: 0.5\n",
    },
  });
  repos.push(repo);
  const before = env.logs.length;
  expect((await env.controller.add({ name: "chatty", kind: "task", git_url: repo.url })).ok).toBe(
    true,
  );
  await waitFor(
    () => env.logs.slice(before).some((l) => l.includes("dropped")),
    "dropped-lines notice",
  );
  const lines = env.logs.slice(before).filter((l) => l.includes('"msg":"line '));
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.length).toBeLessThan(50000);
  expect((await env.controller.remove("task", "chatty")).ok).toBe(true);
});

test("console.* in a plugin reaches the server log tagged with the plugin, not raw stdout", async () => {
  const { createRepo } = await import("../helpers/git-repo.ts");
  const repo = await createRepo({
    files: {
      "t.ts":
        'import { TaskBase } from "iocmng";\nexport class Talky extends TaskBase { initialize() { console.log("hello %s", "console"); console.error(new Error("console boom")); } execute() {} cleanup() {} }\n',
      "config.yaml": "parameters:\n  interval: 0.5\n",
    },
  });
  repos.push(repo);
  const before = env.logs.length;
  expect((await env.controller.add({ name: "talky", kind: "task", git_url: repo.url })).ok).toBe(
    true,
  );
  const entries = () => env.logs.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
  const hello = await waitFor(
    () => entries().find((e) => e.msg === "hello console"),
    "console.log line in the server log",
  );
  expect(hello).toMatchObject({ plugin: "talky", console: true, level: 30 });
  const boom = await waitFor(
    () => entries().find((e) => e.msg === "console boom"),
    "console.error line in the server log",
  );
  expect(boom.level).toBe(50);
  expect(String((boom.err as { stack?: string }).stack)).toContain("console boom");
  expect((await env.controller.remove("task", "talky")).ok).toBe(true);
});
