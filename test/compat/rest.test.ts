/**
 * Acceptance, REST: (1) the epik8s dashboard's call sequence (as 2.7.9 serves it) replayed
 * against a real server (paths, bodies, the fields it reads, its fallbacks, from another origin);
 * (2) every 2.7.9 endpoint (docs/rest-api.md, "2.7.9 routes") with its documented shape, and a clear 4xx for bad input to each.
 * Plugins come from real git repositories; PVs are checked with pyepics.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DIAG_JOB } from "../e2e/lib/plugins.ts";
import { py } from "../e2e/lib/pyepics.ts";
import {
  freeUdpPort,
  makeDirs,
  type ServerDirs,
  type SpawnedServer,
  spawnServer,
  waitFor,
} from "../e2e/lib/server.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";

const ORIGIN = "https://dashboard.example.org";
const CONFIG_TASK = `parameters: {mode: continuous, interval: 0.2, gain: 3}
arguments:
  inputs:
    SP: {type: float, value: 1.5, unit: mm}
  outputs:
    OUT: {type: float, value: 0.0}
transforms:
  - {output: OUT, expression: "SP * gain"}
`;

/** A code plugin extending DeclarativeTask: links to a PV of another plugin of the same server. */
const WATCH_TS = `import { DeclarativeTask } from "iocmng";

export default class Watch extends DeclarativeTask {
  onInputChanged(name: string, value: number | string, old: number | string) {
    this.setPv("SEEN", \`\${name}:\${old}->\${value}\`);
  }
}
`;
const WATCH_CFG = `parameters: {mode: reactive, interval: 1.0}
arguments:
  inputs:
    sp: {type: float, link: "BL:MON2:SP", link_mode: monitor, trigger: true}
  outputs:
    SEEN: {type: string}
    DOUBLE: {type: float}
transforms: [{output: DOUBLE, expression: "sp * 2"}]
`;
/** A plain TaskBase with a declarative config: refused (links would do nothing). */
const PLAIN_TS = `import { TaskBase } from "iocmng";
export default class Plain extends TaskBase {
  initialize() {}
  execute() {}
  cleanup() {}
}
`;

let repo: TestRepo;
let dirs: ServerDirs;
let s: SpawnedServer;
let localRoot: string;

/** fetch as the dashboard does: from another origin, body parsed with `.json().catch(() => null)`. */
async function dash(method: string, path: string, body?: unknown, json = true) {
  const headers: Record<string, string> = { origin: ORIGIN };
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    if (json) headers["content-type"] = "application/json";
  }
  const resp = await fetch(s.base + path, init);
  const data = (await resp.json().catch(() => null)) as Record<string, unknown> | null;
  expect(resp.headers.get("access-control-allow-origin")).toBe(ORIGIN);
  return { resp, data };
}

beforeAll(async () => {
  repo = await createRepo({
    files: {
      "config/iocs/beamline-controller/mon/config.yaml": CONFIG_TASK,
      ...Object.fromEntries(Object.entries(DIAG_JOB).map(([k, v]) => [`jobs/diag/${k}`, v])),
      "broken/config.yaml": "rules: [{condition: 'x ** 2'}]\n",
      "watch/watch.ts": WATCH_TS,
      "watch/config.yaml": WATCH_CFG,
      "plain/plain.ts": PLAIN_TS,
      "plain/config.yaml": WATCH_CFG,
    },
  });
  localRoot = await mkdtemp(join(tmpdir(), "iocmng-local-"));
  await writeFile(join(localRoot, "config.yaml"), CONFIG_TASK);
  dirs = await makeDirs();
  const caPort = await freeUdpPort();
  s = await spawnServer(dirs, {
    caPort,
    env: {
      IOCMNG_PREFIX: "BL",
      IOCMNG_CORS_ORIGINS: ORIGIN,
      IOCMNG_LOCAL_PATH_ROOTS: localRoot,
      // The plugins' CA client (links) talks to this very server.
      EPICS_CA_ADDR_LIST: "127.0.0.1",
      EPICS_CA_AUTO_ADDR_LIST: "NO",
      EPICS_CA_SERVER_PORT: String(caPort),
    },
  });
}, 120_000);

afterAll(async () => {
  await s?.kill();
  await Promise.allSettled([
    dirs?.remove(),
    repo?.cleanup(),
    rm(localRoot, { recursive: true, force: true }),
  ]);
});

describe("the dashboard's call sequence", () => {
  test("poll, deploy (task and job), details, restart, run, remove", async () => {
    // Preflight of a JSON POST from the dashboard's origin.
    const pre = await fetch(`${s.base}/plugins`, {
      method: "OPTIONS",
      headers: {
        origin: ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe(ORIGIN);

    // 1. Poll: health, tasks, jobs.
    const health = await dash("GET", "/health");
    expect(health.resp.ok).toBe(true);
    expect(health.data?.status).toBe("ok");
    expect(typeof health.data?.version).toBe("string");
    expect((await dash("GET", "/tasks")).data?.plugins).toEqual([]);
    expect((await dash("GET", "/jobs")).data?.plugins).toEqual([]);

    // 4. deployPlugin: POST /plugins {name, git_url, path, branch, auto_start}; no pat when empty.
    const dep = await dash("POST", "/plugins", {
      name: "mon",
      git_url: repo.url,
      path: "config/iocs/beamline-controller/mon",
      branch: "main",
      auto_start: true,
    });
    expect(dep.resp.ok).toBe(true);
    expect(dep.data?.ok).not.toBe(false);
    expect(dep.data?.message).toBe("Plugin 'mon' added successfully");
    expect((dep.data?.validation as { errors: string[] } | undefined)?.errors).toEqual([]);
    const depJob = await dash("POST", "/plugins", {
      name: "diag",
      git_url: repo.url,
      path: "jobs/diag",
      branch: "main",
      auto_start: true,
    });
    expect(depJob.resp.ok).toBe(true);
    expect((depJob.data?.plugin as { plugin_type: string } | undefined)?.plugin_type).toBe("job");

    // Handle deploy: GET /plugins/{n} reads git_url, branch, path, status.
    const got = await dash("GET", "/plugins/mon");
    expect(got.data).toMatchObject({
      git_url: repo.url,
      branch: "main",
      path: "config/iocs/beamline-controller/mon",
      status: "running",
    });

    // 1 again: per plugin name, running, status (RUNNING label) and the counters.
    const tasks = (await dash("GET", "/tasks")).data?.plugins as Record<string, unknown>[];
    expect(tasks.map((p) => [p.name, p.running, p.plugin_type, p.class_name])).toEqual([
      ["mon", true, "task", "DeclarativeTask"],
    ]);
    const jobs = (await dash("GET", "/jobs")).data?.plugins as Record<string, unknown>[];
    expect(jobs.map((p) => p.name)).toEqual(["diag"]);

    // 2. Details: the list entry has none of start_parameters/pv_definitions/built_pvs → /startup.
    expect(
      tasks[0]?.start_parameters ?? tasks[0]?.pv_definitions ?? tasks[0]?.built_pvs,
    ).toBeUndefined();
    const st = (await dash("GET", "/tasks/mon/startup")).data as Record<string, unknown>;
    expect(st).toMatchObject({
      name: "mon",
      plugin_type: "task",
      mode: "continuous",
      pv_prefix: "BL:MON",
      plugin_prefix: "MON",
      base_control_pvs: ["ENABLE", "STATUS", "MESSAGE", "CYCLE_COUNT"],
      start_parameters: { mode: "continuous", interval: 0.2, gain: 3 },
      additional_input_pvs: ["SP"],
      additional_output_pvs: ["OUT"],
    });
    const defs = st.pv_definitions as { inputs: Record<string, { type: string; unit: string }> };
    expect(defs.inputs.SP).toMatchObject({ type: "float", unit: "mm" });
    expect(st.built_pvs).toEqual(
      expect.arrayContaining([
        "ENABLE",
        "STATUS",
        "MESSAGE",
        "VERSION",
        "CLEAR",
        "RESET",
        "SP",
        "OUT",
      ]),
    );
    expect((await dash("GET", "/jobs/diag/startup")).data).toMatchObject({
      plugin_type: "job",
      mode: null,
      base_control_pvs: ["STATUS", "MESSAGE"],
    });
    const info = (await dash("GET", "/plugins/mon")).data as Record<string, unknown>;
    expect(info).toMatchObject({
      class_name: "DeclarativeTask",
      branch: "main",
      plugin_prefix: "MON",
    });
    // Live values on <pv_prefix>:<PV>; STATUS decoded with the labels INIT,RUN,PAUSED,END,ERROR.
    const pvs = await py(`out([get("BL:MON:STATUS", as_string=True), get("BL:MON:OUT")])`, s.caEnv);
    expect(pvs.result).toEqual(["RUN", 4.5]);

    // 3. Restart: no body, no content-type; resp.ok and ok !== false; message shown.
    const rs = await dash("POST", "/plugins/mon/restart");
    expect(rs.resp.ok).toBe(true);
    expect(rs.data?.ok).not.toBe(false);
    expect(rs.data?.message).toBe("Plugin 'mon' restarted successfully");

    // Run: a job answers with result.message; the dashboard also runs tasks that way → 404.
    const run = await dash("POST", "/jobs/diag/run");
    expect(run.resp.ok).toBe(true);
    expect((run.data?.result as { message: string } | undefined)?.message).toBe("Diagnostics OK");
    const runTask = await dash("POST", "/jobs/mon/run");
    expect(runTask.resp.status).toBe(404);
    expect(typeof runTask.data?.detail).toBe("string");
    // The last results are kept.
    const res = (await dash("GET", "/jobs/diag/results")).data as {
      count: number;
      results: { message: string }[];
    };
    expect(res.count).toBe(1);
    expect(res.results[0]?.message).toBe("Diagnostics OK");
    expect(((await dash("GET", "/jobs/diag")).data?.results as unknown[] | undefined)?.length).toBe(
      1,
    );

    // A rejected deploy: non-2xx with detail/message and validation.errors.
    const bad = await dash("POST", "/plugins", {
      name: "broken",
      git_url: repo.url,
      path: "broken",
      branch: "main",
      auto_start: true,
    });
    expect(bad.resp.status).toBe(422);
    expect(bad.data?.ok).toBe(false);
    expect(String(bad.data?.detail)).toContain("power operator");
    expect((bad.data?.validation as { errors: string[] } | undefined)?.errors.join(" ")).toContain(
      "rules[0].condition",
    );

    // Remove.
    for (const n of ["mon", "diag"])
      expect((await dash("DELETE", `/plugins/${n}`)).resp.ok).toBe(true);
    expect((await dash("GET", "/plugins")).data).toEqual({ plugins: [], count: 0 });
  }, 240_000);
});

describe("every 2.7.9 endpoint: shape, and a clear 4xx for bad input", () => {
  test("/plugins add/list/get/delete/restart/run", async () => {
    const api = s.api.bind(s);
    const bads: [unknown, string][] = [
      [{}, "name"],
      [{ name: "x y", git_url: repo.url }, "name"],
      [{ name: "nosrc" }, "Either git_url or local_path must be provided"],
      [{ name: "x", git_url: repo.url, brnach: "main" }, "unknown field"],
      [{ name: "x", git_url: repo.url, autostart_order: "first" }, "autostart_order"],
    ];
    for (const [body, msg] of bads) {
      const r = await api("POST", "/plugins", body);
      expect(r.status).toBe(422);
      expect(String(r.body.detail)).toContain(msg);
    }
    expect((await api("POST", "/plugins", "{not json")).status).toBe(400);
    const add = await api("POST", "/plugins", {
      name: "t1",
      git_url: repo.url,
      path: "config/iocs/beamline-controller/mon",
      auto_start: false,
    });
    expect(add.status).toBe(201);
    expect(add.body).toMatchObject({
      ok: true,
      validation: { ok: true, class_name: "DeclarativeTask", plugin_type: "task", errors: [] },
    });
    const dup = await api("POST", "/plugins", {
      name: "t1",
      git_url: repo.url,
      path: "config/iocs/beamline-controller/mon",
    });
    expect(dup.status).toBe(409);
    expect(String(dup.body.detail)).toContain("Plugin 't1' already exists");
    const list = await api("GET", "/plugins?type=task");
    expect(list.body.count).toBe(1);
    const p = (list.body.plugins as Record<string, unknown>[])[0] as Record<string, unknown>;
    for (const k of [
      "name",
      "class_name",
      "path",
      "branch",
      "git_url",
      "local_path",
      "plugin_type",
      "status",
      "auto_start",
      "auto_start_on_boot",
      "autostart_order",
      "pv_prefix",
      "plugin_prefix",
      "mode",
      "parameters",
      "start_parameters",
      "arguments",
      "pv_definitions",
      "base_control_pvs",
      "additional_input_pvs",
      "additional_output_pvs",
      "built_pvs",
      "running",
      "cycle_count",
    ]) {
      expect(p).toHaveProperty(k);
    }
    // auto_start false: loaded, not running.
    expect(p.status).toBe("loaded");
    expect((await api("GET", "/plugins?type=job")).body).toEqual({ plugins: [], count: 0 });
    expect((await api("GET", "/plugins?type=bogus")).status).toBe(422);
    for (const [m, path] of [
      ["GET", "/plugins/nope"],
      ["DELETE", "/plugins/nope"],
      ["POST", "/plugins/nope/restart"],
      ["POST", "/plugins/nope/run"],
    ] as const) {
      const r = await api(m, path);
      expect(r.status).toBe(404);
      expect(r.body.detail).toBe("Plugin 'nope' not found");
    }
    const runTask = await api("POST", "/plugins/t1/run");
    expect(runTask.status).toBe(400);
    expect(runTask.body.detail).toBe("'t1' is a task, not a job — use DELETE or restart");
    expect((await api("GET", "/plugins/bad%20name")).status).toBe(422);
    expect((await api("GET", "/tasks/t1/startup")).status).toBe(200);
    expect((await api("GET", "/jobs/t1/startup")).body.detail).toBe("Job 't1' not found");
    expect((await api("GET", "/tasks/nope/startup")).status).toBe(404);
    expect((await api("GET", "/jobs/nope/results")).status).toBe(404);
    expect((await api("DELETE", "/plugins/t1")).body).toEqual({
      ok: true,
      message: "Plugin 't1' removed",
      validation: null,
    });
  }, 180_000);

  test("local_path: only under IOCMNG_LOCAL_PATH_ROOTS", async () => {
    const out = await s.api("POST", "/plugins", { name: "lp1", local_path: "/etc" });
    expect(out.status).toBe(403);
    expect(String(out.body.detail)).toContain("outside IOCMNG_LOCAL_PATH_ROOTS");
    const missing = await s.api("POST", "/plugins", {
      name: "lp2",
      local_path: join(localRoot, "nope"),
    });
    expect(missing.status).toBe(422);
    const ok = await s.api("POST", "/plugins", { name: "lp3", local_path: localRoot });
    expect(ok.status).toBe(201);
    const info = (await s.api("GET", "/plugins/lp3")).body;
    expect(info).toMatchObject({ local_path: localRoot, git_url: null, status: "running" });
    expect((await s.api("POST", "/plugins/lp3/restart")).status).toBe(200);
    expect((await s.api("DELETE", "/plugins/lp3")).status).toBe(200);
  }, 120_000);

  test("/health, /devices, /pvs/*", async () => {
    const h = await s.api("GET", "/health");
    expect(Object.keys(h.body).sort()).toEqual(["jobs_count", "status", "tasks_count", "version"]);
    expect(await s.api("GET", "/devices")).toEqual({
      status: 200,
      body: { available: [], available_count: 0, created: [], created_count: 0 },
    });
    expect((await s.api("GET", "/pvs/provider")).body).toEqual({ provider: "ca" });
    expect((await s.api("POST", "/pvs/get", { pv_name: "" })).status).toBe(422);
    expect((await s.api("POST", "/pvs/get", { pv_name: "BL:NOPE:X", timeout: 0.3 })).status).toBe(
      504,
    );
    expect((await s.api("POST", "/pvs/put", { pv_name: "BL:NOPE:X" })).status).toBe(422);
    expect((await s.api("POST", "/pvs/monitor", {})).status).toBe(422);
    expect((await s.api("DELETE", "/pvs/monitor/none")).status).toBe(404);
    expect((await s.api("GET", "/pvs/monitors")).body).toEqual({ monitors: {}, count: 0 });
  }, 60_000);
});

describe("code plugins with 2.7.9 configs", () => {
  test("extending DeclarativeTask: onInputChanged and transforms from a link to a plugin of the same server", async () => {
    const mon = await s.api("POST", "/plugins", {
      name: "mon2",
      git_url: repo.url,
      path: "config/iocs/beamline-controller/mon",
    });
    expect(mon.status).toBe(201);
    const w = await s.api("POST", "/plugins", { name: "watch", git_url: repo.url, path: "watch" });
    expect(w.status).toBe(201);
    expect((w.body.plugin as { class_name: string }).class_name).toBe("Watch");
    await py(`put("BL:MON2:SP", 7, wait=True); out(1)`, s.caEnv);
    const seen = await waitFor(
      "onInputChanged",
      async () => {
        const r = await py(`out([get("BL:WATCH:SEEN"), get("BL:WATCH:DOUBLE")])`, s.caEnv);
        const v = r.result as [string, number] | undefined;
        return v && v[0] === "sp:1.5->7" ? v : undefined;
      },
      60_000,
    );
    expect(seen).toEqual(["sp:1.5->7", 14]);
    for (const n of ["watch", "mon2"])
      expect((await s.api("DELETE", `/plugins/${n}`)).status).toBe(200);
  }, 120_000);

  test("a plain TaskBase with links in its config is refused at start, saying what to extend", async () => {
    const r = await s.api("POST", "/plugins", { name: "plain", git_url: repo.url, path: "plain" });
    expect(r.status).toBe(422);
    expect(String(r.body.detail)).toContain("must extend DeclarativeTask");
    expect((await s.api("GET", "/plugins/plain")).status).toBe(404);
  }, 60_000);
});
