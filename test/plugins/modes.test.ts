/**
 * Task and job behaviour through the registry (the same path CA writes take): continuous cycles,
 * ENABLE pause/resume, errors in execute(), onPvWrite refusal, addPv, triggered RUN with
 * completion, jobs with results.
 */
import { describe, expect, test } from "bun:test";
import { PvWriteError } from "../../src/pv/types.ts";
import { createRepo } from "../helpers/git-repo.ts";
import { type Env, fileEnv, fixtureRepo, pvValue, rejectionOf, waitFor } from "./harness.ts";

let env: Env;
const repos = fileEnv((e) => {
  env = e;
});

async function add(
  name: string,
  fixture: string,
  kind: "task" | "job",
  extra: Record<string, unknown> = {},
) {
  const repo = await fixtureRepo(fixture);
  repos.push(repo);
  const r = await env.controller.add({ name, kind, git_url: repo.url, ...extra });
  if (!r.ok) throw new Error(`add ${name} failed: ${r.message}`);
  return r.value;
}

const STATUS = ["INIT", "RUN", "PAUSED", "END", "ERROR"];
const status = (p: string) => STATUS[Number(pvValue(env, `${p}:STATUS`))];
const count = (p: string) => Number(pvValue(env, `${p}:CYCLE_COUNT`));

describe("continuous task", () => {
  test("cycles, CYCLE_COUNT and STATUS RUN; info reflects PVs", async () => {
    const info = await add("cont", "counter", "task");
    expect(info.prefix).toBe("TEST:CONT");
    expect(info.mode).toBe("continuous");
    await waitFor(() => count("TEST:CONT") >= 5, "5 cycles");
    expect(status("TEST:CONT")).toBe("RUN");
    expect(Number(pvValue(env, "TEST:CONT:VALUE"))).toBeGreaterThanOrEqual(5);
    const got = env.controller.get("task", "cont");
    expect(got?.status).toBe("RUN");
    expect(got?.running).toBe(true);
    expect(got?.pvs.map((p) => p.name)).toContain("SETPOINT");
  });

  test("ENABLE=0 pauses (STATUS PAUSED, no more cycles), ENABLE=1 resumes", async () => {
    const enable = env.registry.get("TEST:CONT:ENABLE");
    if (!enable) throw new Error("no ENABLE");
    await enable.write(0);
    await waitFor(() => status("TEST:CONT") === "PAUSED", "PAUSED");
    const frozen = count("TEST:CONT");
    await Bun.sleep(300); // several intervals: the count must not move while paused
    expect(count("TEST:CONT")).toBe(frozen);
    await enable.write(1);
    await waitFor(() => status("TEST:CONT") === "RUN", "RUN again");
    await waitFor(() => count("TEST:CONT") > frozen + 2, "cycles after resume");
  });

  test("a client write reaches onPvWrite; a refusal fails the put and keeps the value", async () => {
    const sp = env.registry.get("TEST:CONT:SETPOINT");
    if (!sp) throw new Error("no SETPOINT");
    await sp.write(12.5);
    expect(sp.value).toBe(12.5);
    await waitFor(
      () => pvValue(env, "TEST:CONT:READBACK") === 12.5,
      "READBACK follows (getPv sees the write)",
    );
    let err: unknown;
    try {
      await sp.write(-1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PvWriteError);
    expect((err as PvWriteError).reason).toContain("negative setpoint refused");
    expect(sp.value).toBe(12.5);
  });

  test("outputs are read-only to clients", async () => {
    const v = env.registry.get("TEST:CONT:VALUE");
    expect(await rejectionOf(v?.write(1))).toContain("read-only");
  });

  test("addPv creates a PV at runtime that is served and writable", async () => {
    await env.registry.get("TEST:CONT:ADD_PV")?.write(7);
    const extra = await waitFor(() => env.registry.get("TEST:CONT:EXTRA_7"), "EXTRA_7 created");
    expect(extra.value).toBe(7);
    await extra.write(8);
    expect(extra.value).toBe(8);
    expect(env.controller.get("task", "cont")?.pvs.map((p) => p.name)).toContain("EXTRA_7");
    // Adding the same PV again is refused inside the plugin: the write fails with its reason.
    expect(await rejectionOf(env.registry.get("TEST:CONT:ADD_PV")?.write(7))).toContain(
      "already exists",
    );
  });

  test("remove: cleanup runs, PVs disappear, name is free", async () => {
    const before = env.registry.size;
    const r = await env.controller.remove("task", "cont");
    expect(r.ok).toBe(true);
    expect(env.registry.get("TEST:CONT:STATUS")).toBeUndefined();
    expect(env.registry.get("TEST:CONT:EXTRA_7")).toBeUndefined();
    expect(env.registry.size).toBeLessThan(before);
    expect(env.logs.some((l) => l.includes("counter stopping"))).toBe(true);
  });
});

test("execute() throwing: STATUS ERROR, MESSAGE ≤ 39 bytes, logged with stack, loop goes on", async () => {
  await add("flaky", "counter", "task", { parameters: { failEvery: 3, interval: 0.05 } });
  await waitFor(() => status("TEST:FLAKY") === "ERROR", "ERROR after a failing cycle");
  const msg = String(pvValue(env, "TEST:FLAKY:MESSAGE"));
  expect(msg.startsWith("planned failure at cycle")).toBe(true);
  expect(new TextEncoder().encode(msg).length).toBeLessThanOrEqual(39);
  // The next successful cycle puts it back to RUN, and cycles keep counting past failures.
  await waitFor(() => count("TEST:FLAKY") >= 7, "cycles continue past failures");
  await waitFor(() => status("TEST:FLAKY") === "RUN", "RUN after a good cycle");
  const line = env.logs.find(
    (l) => l.includes("execute() failed") && l.includes('"plugin":"flaky"'),
  );
  expect(line).toBeDefined();
  expect(line).toContain("stack");
  expect((await env.controller.remove("task", "flaky")).ok).toBe(true);
});

test("auto_start=false loads the task disabled", async () => {
  await add("lazy", "counter", "task", { auto_start: false });
  expect(pvValue(env, "TEST:LAZY:ENABLE")).toBe(0);
  expect(status("TEST:LAZY")).toBe("PAUSED");
  await Bun.sleep(200);
  expect(count("TEST:LAZY")).toBe(0);
  await env.registry.get("TEST:LAZY:ENABLE")?.write(1);
  await waitFor(() => count("TEST:LAZY") > 0, "runs once enabled");
  expect((await env.controller.remove("task", "lazy")).ok).toBe(true);
});

describe("triggered task", () => {
  test("RUN=1 completes only when execute() has finished; RUN returns to 0", async () => {
    const info = await add("trig", "triggered", "task");
    expect(info.mode).toBe("triggered");
    await Bun.sleep(200);
    expect(count("TEST:TRIG")).toBe(0); // nothing runs without a trigger
    const run = env.registry.get("TEST:TRIG:RUN");
    if (!run) throw new Error("no RUN");
    const p = run.write(1);
    await waitFor(() => run.value === 1, "RUN shows 1 while executing");
    await p;
    // The put completed after execute(): its output is already there.
    expect(pvValue(env, "TEST:TRIG:DONE")).toBe(1);
    expect(run.value).toBe(0);
    expect(count("TEST:TRIG")).toBe(1);
  });

  test("a trigger while busy is refused with a clear reason", async () => {
    const run = env.registry.get("TEST:TRIG:RUN");
    if (!run) throw new Error("no RUN");
    const first = run.write(1);
    await waitFor(() => run.value === 1, "first trigger running");
    expect(await rejectionOf(run.write(1))).toContain("busy");
    await first;
    expect(pvValue(env, "TEST:TRIG:DONE")).toBe(2);
  });

  test("a trigger while disabled is refused", async () => {
    await env.registry.get("TEST:TRIG:ENABLE")?.write(0);
    expect(await rejectionOf(env.registry.get("TEST:TRIG:RUN")?.write(1))).toContain("disabled");
    await env.registry.get("TEST:TRIG:ENABLE")?.write(1);
    expect((await env.controller.remove("task", "trig")).ok).toBe(true);
  });

  test("RUN on a continuous task is refused", async () => {
    await add("notrig", "counter", "task");
    expect(await rejectionOf(env.registry.get("TEST:NOTRIG:RUN")?.write(1))).toContain(
      "triggered mode",
    );
    expect((await env.controller.remove("task", "notrig")).ok).toBe(true);
  });
});

describe("job", () => {
  test("run returns the result; STATUS IDLE → SUCCESS; MESSAGE set", async () => {
    const info = await add("diag", "job", "job");
    expect(info.kind).toBe("job");
    expect(info.status).toBe("IDLE");
    const r = await env.controller.runJob("diag");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.success).toBe(true);
    expect(r.value.data).toEqual({ runs: 1, who: "diag" });
    expect(r.value.message).toBe("Diagnostics OK");
    expect(Number.isNaN(Date.parse(r.value.timestamp))).toBe(false);
    expect(env.controller.get("job", "diag")?.status).toBe("SUCCESS");
    expect(pvValue(env, "TEST:DIAG:MESSAGE")).toBe("Diagnostics OK");
    expect(pvValue(env, "TEST:DIAG:RUNS")).toBe(1);
  });

  test("a second run while running is refused (409)", async () => {
    expect((await env.controller.remove("job", "diag")).ok).toBe(true);
    await add("slowjob", "job", "job", { parameters: { delay: 400 } });
    const first = env.controller.runJob("slowjob");
    await waitFor(() => env.controller.get("job", "slowjob")?.status === "RUNNING", "RUNNING");
    const second = await env.controller.runJob("slowjob");
    expect(second.ok).toBe(false);
    if (!second.ok) expect(second.code).toBe(409);
    expect((await first).ok).toBe(true);
    expect((await env.controller.remove("job", "slowjob")).ok).toBe(true);
  });

  test("a thrown error becomes a failed result (STATUS FAILED)", async () => {
    await add("badjob", "job", "job", { parameters: { fail: true } });
    const r = await env.controller.runJob("badjob");
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.success).toBe(false);
      expect(r.value.message).toContain("failed on purpose");
    }
    expect(env.controller.get("job", "badjob")?.status).toBe("FAILED");
    expect((await env.controller.remove("job", "badjob")).ok).toBe(true);
  });

  test("a plain {success, data, message} object is accepted", async () => {
    await add("plainjob", "job", "job", { parameters: { plain: true } });
    const r = await env.controller.runJob("plainjob");
    expect(r.ok && r.value).toMatchObject({ success: true, data: { runs: 1 }, message: "plain" });
    expect((await env.controller.remove("job", "plainjob")).ok).toBe(true);
  });

  test("unknown job: 404; a task is not a job", async () => {
    const r = await env.controller.runJob("nope");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe(404);
  });
});

test("parameters from the request override config.yaml", async () => {
  const repo = await createRepo({
    files: {
      "p.ts":
        'import { TaskBase } from "iocmng";\nexport class P extends TaskBase { initialize() { this.setPv("OUT", String(this.parameters.greeting)); } execute() {} cleanup() {} }\n',
      "config.yaml":
        "parameters:\n  greeting: hello\n  mode: triggered\npvs:\n  outputs:\n    OUT:\n      type: string\n",
    },
  });
  repos.push(repo);
  const r = await env.controller.add({
    name: "params",
    kind: "task",
    git_url: repo.url,
    parameters: { greeting: "override" },
  });
  expect(r.ok).toBe(true);
  await waitFor(() => pvValue(env, "TEST:PARAMS:OUT") === "override", "OUT = override");
  if (r.ok) expect(r.value.parameters).toMatchObject({ greeting: "override", mode: "triggered" });
  expect((await env.controller.remove("task", "params")).ok).toBe(true);
});

test("continuous: an execute() longer than the interval never overlaps the next one", async () => {
  const repo = await createRepo({
    files: {
      "slow.ts": `import { TaskBase } from "iocmng";
export class Slow extends TaskBase {
  private running = 0;
  private maxRunning = 0;
  initialize() {}
  async execute() {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    await Bun.sleep(60);
    this.running--;
    this.setPv("MAX_CONCURRENT", this.maxRunning);
  }
  cleanup() {}
}
`,
      "config.yaml":
        "parameters:\n  interval: 0.01\npvs:\n  outputs:\n    MAX_CONCURRENT:\n      type: int\n",
    },
  });
  repos.push(repo);
  expect((await env.controller.add({ name: "slow", kind: "task", git_url: repo.url })).ok).toBe(
    true,
  );
  await waitFor(() => count("TEST:SLOW") >= 5, "5 slow cycles");
  expect(pvValue(env, "TEST:SLOW:MAX_CONCURRENT")).toBe(1);
  expect((await env.controller.remove("task", "slow")).ok).toBe(true);
});

test("setPv with an unknown PV or an unsupported value throws inside the plugin", async () => {
  const repo = await createRepo({
    files: {
      "bad.ts": `import { TaskBase } from "iocmng";
export class BadSet extends TaskBase {
  initialize() {}
  execute() {
    const which = this.cycleCount % 2;
    if (which === 0) this.setPv("NOPE", 1);
    else this.setPv("OUT", { not: "a value" } as unknown as number);
  }
  cleanup() {}
}
`,
      "config.yaml": "parameters:\n  interval: 0.05\npvs:\n  outputs:\n    OUT:\n      type: int\n",
    },
  });
  repos.push(repo);
  expect((await env.controller.add({ name: "badset", kind: "task", git_url: repo.url })).ok).toBe(
    true,
  );
  await waitFor(
    () => env.logs.some((l) => l.includes('unknown PV \\"NOPE\\"')),
    "unknown PV error logged",
  );
  await waitFor(
    () => env.logs.some((l) => l.includes('setPv(\\"OUT\\"): expected a number')),
    "bad value error logged",
  );
  expect(status("TEST:BADSET")).toBe("ERROR");
  expect((await env.controller.remove("task", "badset")).ok).toBe(true);
});
