import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { makeRepo, type TestRepo } from "../helpers/git-e2e.ts";
import { COUNTER_TASK, DIAG_JOB, TRIGGERED_TASK } from "./lib/plugins.ts";
import { py } from "./lib/pyepics.ts";
import {
  makeDirs,
  type ServerDirs,
  type SpawnedServer,
  spawnServer,
  waitFor,
} from "./lib/server.ts";

/**
 * The operator's day through the real server: REST adds plugins from real git repositories, and
 * pyepics (libca) reads and writes their PVs over Channel Access on loopback.
 */
let dirs: ServerDirs;
let srv: SpawnedServer;
const repos: TestRepo[] = [];
const PREFIX = "E2E";

beforeAll(async () => {
  dirs = await makeDirs();
  srv = await spawnServer(dirs, {
    env: { IOCMNG_CONFIG: await writeServerConfig(dirs.root) },
  });
});

afterAll(async () => {
  if (srv !== undefined) await srv.kill("SIGKILL");
  await Promise.all(repos.map((r) => r.remove()));
  await dirs?.remove();
});

async function writeServerConfig(root: string): Promise<string> {
  const file = `${root}/iocmng.yaml`;
  await Bun.write(file, `prefix: ${PREFIX}\n`);
  return file;
}

async function repo(files: Record<string, string>): Promise<TestRepo> {
  const r = await makeRepo(files);
  repos.push(r);
  return r;
}

describe("continuous task", () => {
  const name = "counter";
  const pv = (s: string) => `${PREFIX}:${name.toUpperCase()}:${s}`;

  test("added through REST, PVs served, parameters from the request override config.yaml", async () => {
    const r = await repo(COUNTER_TASK);
    const add = await srv.api("POST", "/tasks", {
      name,
      git_url: r.url,
      parameters: { gain: 7 },
    });
    expect(add.status).toBe(201);
    expect(add.body.ok).toBe(true);
    const info = (await srv.api("GET", `/tasks/${name}`)).body;
    expect(info.prefix).toBe(`${PREFIX}:${name.toUpperCase()}`);
    expect(info.mode).toBe("continuous");
    const pvs = (await srv.api("GET", `/tasks/${name}/pvs`)).body.pvs as Array<{ name: string }>;
    const names = pvs.map((p) => p.name).sort();
    for (const n of ["ENABLE", "STATUS", "MESSAGE", "CYCLE_COUNT", "RUN", "SETPOINT", "OUT"]) {
      expect(names).toContain(n);
    }
    const health = (await srv.api("GET", "/health")).body;
    expect(health.tasks_count).toBeGreaterThanOrEqual(1);

    const run = await py(
      `
sp = get("${pv("SETPOINT")}")
egu = epics.PV("${pv("SETPOINT")}", form="ctrl")
egu.wait_for_connection(10)
ctrl = egu.get_ctrlvars(timeout=10)
status = get("${pv("STATUS")}", as_string=True)
deadline = time.time() + 20
while get("${pv("GAIN_SEEN")}") != 7 and time.time() < deadline:
    time.sleep(0.1)
out({"sp": sp, "units": ctrl["units"], "status": status, "gain": get("${pv("GAIN_SEEN")}")})
`,
      srv.caEnv,
    );
    expect(run.stderr).not.toContain("Traceback");
    expect(run.result).toEqual({ sp: 1.5, units: "mm", status: "RUN", gain: 7 });
  });

  test("CYCLE_COUNT advances and a written setpoint reaches the plugin", async () => {
    const run = await py(
      `
c0 = get("${pv("CYCLE_COUNT")}")
deadline = time.time() + 20
while get("${pv("CYCLE_COUNT")}") < c0 + 3 and time.time() < deadline:
    time.sleep(0.1)
c1 = get("${pv("CYCLE_COUNT")}")
put("${pv("SETPOINT")}", 21.25, wait=True)
deadline = time.time() + 20
while get("${pv("OUT")}") != 42.5 and time.time() < deadline:
    time.sleep(0.1)
out({"advanced": c1 >= c0 + 3, "sp": get("${pv("SETPOINT")}"), "out": get("${pv("OUT")}")})
`,
      srv.caEnv,
    );
    expect(run.stderr).not.toContain("Traceback");
    expect(run.result).toEqual({ advanced: true, sp: 21.25, out: 42.5 });
    const listed = (await srv.api("GET", `/tasks/${name}/pvs`)).body.pvs as Array<{
      name: string;
      value: unknown;
    }>;
    expect(listed.find((p) => p.name === "SETPOINT")?.value).toBe(21.25);
  });

  test("an output PV refuses CA writes; ENABLE=0 pauses and ENABLE=1 resumes", async () => {
    const run = await py(
      `
p = epics.PV("${pv("OUT")}")
p.wait_for_connection(10)
writable = p.write_access
put("${pv("ENABLE")}", 0, wait=True)
deadline = time.time() + 20
while get("${pv("STATUS")}", as_string=True) != "PAUSED" and time.time() < deadline:
    time.sleep(0.1)
paused = get("${pv("STATUS")}", as_string=True)
put("${pv("ENABLE")}", 1, wait=True)
deadline = time.time() + 20
while get("${pv("STATUS")}", as_string=True) != "RUN" and time.time() < deadline:
    time.sleep(0.1)
out({"writable": writable, "paused": paused, "resumed": get("${pv("STATUS")}", as_string=True)})
`,
      srv.caEnv,
    );
    expect(run.stderr).not.toContain("Traceback");
    expect(run.result).toEqual({ writable: false, paused: "PAUSED", resumed: "RUN" });
  });

  test("restart re-clones and keeps PV values; DELETE removes the PVs", async () => {
    const res = await srv.api("POST", `/tasks/${name}/restart`);
    expect(res.status).toBe(200);
    expect(res.body.ok).toBe(true);
    const after = await py(`out(get("${pv("SETPOINT")}"))`, srv.caEnv);
    expect(after.result).toBe(21.25);

    const del = await srv.api("DELETE", `/tasks/${name}`);
    expect(del.status).toBe(200);
    expect((await srv.api("GET", `/tasks/${name}`)).status).toBe(404);
    const gone = await py(`out(absent("${pv("SETPOINT")}"))`, srv.caEnv);
    expect(gone.result).toBe(true);
  });
});

describe("restart", () => {
  test("new code is picked up; a broken push is refused and the previous version keeps running", async () => {
    const r = await repo(COUNTER_TASK);
    expect((await srv.api("POST", "/tasks", { name: "upd", git_url: r.url })).status).toBe(201);
    // New code: OUT = 3 × SETPOINT instead of 2 ×.
    await r.commit({
      "counter.ts": (COUNTER_TASK["counter.ts"] ?? "").replace("sp * 2", "sp * 3"),
    });
    const ok = await srv.api("POST", "/tasks/upd/restart");
    expect(ok.status).toBe(200);
    const tripled = await py(
      `
deadline = time.time() + 20
while get("${PREFIX}:UPD:OUT") != 4.5 and time.time() < deadline:
    time.sleep(0.1)
out(get("${PREFIX}:UPD:OUT"))
`,
      srv.caEnv,
    );
    expect(tripled.result).toBe(4.5);
    await r.commit({ "counter.ts": "export default class {\n  broken( {\n" });
    const bad = await srv.api("POST", "/tasks/upd/restart");
    expect(bad.status).toBe(422);
    expect((bad.body.validation as { failedStep: string }).failedStep).toBe("syntax");
    const info = await srv.api("GET", "/tasks/upd");
    expect(info.status).toBe(200);
    expect(info.body.status).toBe("RUN");
    expect((await srv.api("DELETE", "/tasks/upd")).status).toBe(200);
  });
});

describe("triggered task", () => {
  test("caput -c on RUN returns only once execute() has finished", async () => {
    const r = await repo(TRIGGERED_TASK);
    const add = await srv.api("POST", "/tasks", { name: "trig", git_url: r.url });
    expect(add.status).toBe(201);
    const pv = (s: string) => `${PREFIX}:TRIG:${s}`;
    const run = await py(
      `
before = get("${pv("DONE")}")
ok = put("${pv("RUN")}", 1, wait=True, timeout=30)
done_right_after = get("${pv("DONE")}")
ok2 = put("${pv("RUN")}", 1, wait=True, timeout=30)
out({"before": before, "ok": ok, "after": done_right_after, "after2": get("${pv("DONE")}"),
     "run": get("${pv("RUN")}")})
`,
      srv.caEnv,
    );
    expect(run.stderr).not.toContain("Traceback");
    // DONE is set at the end of execute(): seeing it right after the put proves completion.
    expect(run.result).toEqual({ before: 0, ok: 1, after: 1, after2: 2, run: 0 });
    expect((await srv.api("DELETE", "/tasks/trig")).status).toBe(200);
  });
});

describe("job", () => {
  test("run through REST returns its result and sets its PVs", async () => {
    const r = await repo(DIAG_JOB);
    const add = await srv.api("POST", "/jobs", {
      name: "diag",
      git_url: r.url,
      parameters: { who: "e2e" },
    });
    expect(add.status).toBe(201);
    expect((await srv.api("GET", "/jobs")).body.count).toBe(1);
    const res = await srv.api("POST", "/jobs/diag/run");
    expect(res.status).toBe(200);
    expect(res.body.ok).toBe(true);
    const result = res.body.result as {
      success: boolean;
      data: unknown;
      message: string;
      timestamp: string;
    };
    expect(result.success).toBe(true);
    expect(Number.isNaN(Date.parse(result.timestamp))).toBe(false);
    expect(result.data).toEqual({ answer: 42, who: "e2e" });
    expect(result.message).toBe("Diagnostics OK");
    const pvs = await waitFor("job PVs", async () => {
      const run = await py(
        `out({"name": get("${PREFIX}:DIAG:SYSTEM_NAME"), "status": get("${PREFIX}:DIAG:STATUS", as_string=True)})`,
        srv.caEnv,
      );
      return run.code === 0 ? run.result : undefined;
    });
    expect(pvs).toEqual({ name: "healthy", status: "SUCCESS" });
    expect((await srv.api("POST", "/tasks/diag/restart")).status).toBe(404);
    const restarted = await srv.api("POST", "/jobs/diag/restart");
    expect(restarted.status).toBe(200);
    expect((await srv.api("POST", "/jobs/diag/run")).body.ok).toBe(true);
    expect((await srv.api("DELETE", "/jobs/diag")).status).toBe(200);
    expect((await srv.api("POST", "/jobs/diag/run")).status).toBe(404);
  });

  test("a second run while the first is still running is 409", async () => {
    const r = await repo(DIAG_JOB);
    const add = await srv.api("POST", "/jobs", {
      name: "slow",
      git_url: r.url,
      parameters: { sleep_ms: 1500 },
    });
    expect(add.status).toBe(201);
    const first = srv.api("POST", "/jobs/slow/run");
    // The job publishes RUNNING on its STATUS PV: only then is the second run sure to overlap.
    await waitFor("job RUNNING", async () => {
      const s = (await srv.api("GET", "/jobs/slow")).body.status;
      return s === "RUNNING" ? s : undefined;
    });
    const second = await srv.api("POST", "/jobs/slow/run");
    expect(second.status).toBe(409);
    expect(second.body.ok).toBe(false);
    expect((await first).status).toBe(200);
    expect((await srv.api("DELETE", "/jobs/slow")).status).toBe(200);
  });
});

describe("concurrent adds", () => {
  test("two adds of one name at once: exactly one wins, the other is 409", async () => {
    const r = await repo(COUNTER_TASK);
    const results = await Promise.all([
      srv.api("POST", "/tasks", { name: "race", git_url: r.url }),
      srv.api("POST", "/tasks", { name: "race", git_url: r.url }),
      srv.api("POST", "/jobs", { name: "race", git_url: r.url }),
    ]);
    const codes = results.map((x) => x.status).sort();
    expect(codes.filter((c) => c === 201)).toHaveLength(1);
    expect(codes.filter((c) => c === 409).length).toBeGreaterThanOrEqual(1);
    expect(codes.every((c) => c === 201 || c === 409 || c === 422)).toBe(true);
    expect((await srv.api("GET", "/tasks/race")).status).toBe(200);
    expect((await srv.api("DELETE", "/tasks/race")).status).toBe(200);
  });
});
