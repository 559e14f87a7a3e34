/**
 * The end-to-end smoke every form of iocmng must pass (sources, compiled binary, chroot'ed image
 * tree): add the example task from a local git repository via REST, operate its PVs with pyepics,
 * add and run the example job, remove both.
 */
import { expect } from "bun:test";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runPy } from "../helpers/ca-harness.ts";
import { eventually, type ServeProcess } from "./serve-process.ts";

const ROOT = join(import.meta.dir, "..", "..");

function git(cwd: string, args: string[]): void {
  const p = Bun.spawnSync(["git", ...args], {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: "/nonexistent",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_AUTHOR_NAME: "smoke",
      GIT_AUTHOR_EMAIL: "smoke@example.invalid",
      GIT_COMMITTER_NAME: "smoke",
      GIT_COMMITTER_EMAIL: "smoke@example.invalid",
    },
  });
  if (p.exitCode !== 0) throw new Error(`git ${args.join(" ")}: ${p.stderr.toString()}`);
}

/** A git repository at `dir` holding examples/ (committed on main); returns its path. */
export function makeExamplesRepo(dir: string): string {
  mkdirSync(dir, { recursive: true });
  cpSync(join(ROOT, "examples"), join(dir, "examples"), {
    recursive: true,
    filter: (src) => !src.includes("node_modules"),
  });
  git(dir, ["init", "-q", "-b", "main"]);
  git(dir, ["add", "-A"]);
  git(dir, ["commit", "-q", "-m", "examples"]);
  return dir;
}

/**
 * A job plugin at `dir` that reads the PV named by its `pv` parameter with `this.ca` (libca in the
 * plugin's Worker, through the TinyCC-compiled callback shim) and returns the value.
 */
export function makeCaJob(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "config.yaml"),
    'parameters:\n  pv: ""\npvs:\n  outputs:\n    ECHO:\n      type: float\n      value: 42.5\n',
  );
  writeFileSync(join(dir, "package.json"), '{"name": "ca-job", "type": "module"}\n');
  writeFileSync(
    join(dir, "cajob.ts"),
    `import { JobBase, JobResult } from "iocmng";
export class CaJob extends JobBase {
  override async initialize(): Promise<void> {}
  override async execute(): Promise<JobResult> {
    const r = await this.ca.get(String(this.parameters.pv), { as: "ctrl", timeout: 30 });
    return JobResult.ok({ value: r.value }, "read through this.ca");
  }
}
`,
  );
  return dir;
}

/** Client-side EPICS_CA_* for a CA server on loopback `port` (what `this.ca` reads). */
export function caClientEnv(port: number): Record<string, string> {
  return {
    EPICS_CA_ADDR_LIST: "127.0.0.1",
    EPICS_CA_AUTO_ADDR_LIST: "NO",
    EPICS_CA_SERVER_PORT: String(port),
  };
}

async function call(sp: ServeProcess, method: string, path: string, body?: unknown) {
  const res = await fetch(`${sp.api}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json as Record<string, unknown> };
}

/** What the smoke observed (the caller asserts on it). */
export interface SmokeResult {
  addTask: { status: number; body: Record<string, unknown> };
  reading: number;
  setpointPutOk: boolean;
  /** The triggered task after `caput -c RUN 1`: its QUALITY state and CYCLE_COUNT. */
  trigger: { quality: string; cycles: number };
  addJob: { status: number; body: Record<string, unknown> };
  run: { status: number; body: Record<string, unknown> };
  jobStatusPv: string;
  removeTask: number;
  removeJob: number;
  tasksAfter: unknown;
}

/**
 * Runs the smoke against `sp`. `gitUrl` is the examples repository as the server sees it (inside a
 * chroot that is not the host path). PV names are `<prefix>:<NAME>:<PV>`.
 */
export async function runSmoke(sp: ServeProcess, gitUrl: string, prefix: string) {
  const addTask = await call(sp, "POST", "/tasks", {
    name: "ramp",
    git_url: gitUrl,
    path: "examples/ramp-task",
    parameters: { interval: 0.1, rate: 1000 },
  });
  if (addTask.status !== 200 && addTask.status !== 201) {
    throw new Error(`add task failed: ${JSON.stringify(addTask.body)}\n${sp.output()}`);
  }
  const pv = `${prefix}:RAMP`;
  const ops = (await runPy(
    sp.caPort,
    `
ok = epics.caput("${pv}:SETPOINT", 12.5, wait=True, timeout=20)
deadline = time.time() + 30
reading = None
while time.time() < deadline:
    reading = epics.caget("${pv}:READING", timeout=10, use_monitor=False)
    if reading == 12.5:
        break
    time.sleep(0.1)
out({"put": ok == 1, "reading": reading})
`,
    { timeoutMs: 90_000 },
  )) as { put: boolean; reading: number };

  const addSnap = await call(sp, "POST", "/tasks", {
    name: "snap",
    git_url: gitUrl,
    path: "examples/snapshot-task",
  });
  if (addSnap.status !== 200 && addSnap.status !== 201) {
    throw new Error(`add triggered task failed: ${JSON.stringify(addSnap.body)}\n${sp.output()}`);
  }
  // put(wait=True) returns only once execute() has finished, so QUALITY is already set.
  const trigger = (await runPy(
    sp.caPort,
    `
epics.caput("${prefix}:SNAP:RUN", 1, wait=True, timeout=60)
out({"quality": epics.caget("${prefix}:SNAP:QUALITY", as_string=True, timeout=10),
     "cycles": epics.caget("${prefix}:SNAP:CYCLE_COUNT", timeout=10)})
`,
    { timeoutMs: 90_000 },
  )) as { quality: string; cycles: number };
  await call(sp, "DELETE", "/tasks/snap");

  const addJob = await call(sp, "POST", "/jobs", {
    name: "diag",
    git_url: gitUrl,
    path: "examples/diagnostics-job",
  });
  const run = await call(sp, "POST", "/jobs/diag/run");
  const jobStatusPv = await eventually(
    async () => {
      const r = (await runPy(
        sp.caPort,
        `out(epics.caget("${prefix}:DIAG:STATUS", as_string=True, timeout=10))`,
      )) as string | null;
      return r ?? undefined;
    },
    "the job's STATUS PV",
    60_000,
  );
  const removeTask = (await call(sp, "DELETE", "/tasks/ramp")).status;
  const removeJob = (await call(sp, "DELETE", "/jobs/diag")).status;
  const tasksAfter = (await call(sp, "GET", "/tasks")).body;
  const result: SmokeResult = {
    addTask,
    reading: ops.reading,
    setpointPutOk: ops.put,
    trigger,
    addJob,
    run,
    jobStatusPv,
    removeTask,
    removeJob,
    tasksAfter,
  };
  return result;
}

/** Asserts everything the smoke must observe, the same for every form of iocmng. */
export function expectSmokePassed(r: SmokeResult): void {
  expect(r.setpointPutOk).toBe(true);
  expect(r.reading).toBe(12.5);
  expect(r.trigger).toEqual({ quality: "GOOD", cycles: 1 });
  expect(r.addJob.body.ok).toBe(true);
  expect(r.run.status).toBe(200);
  expect((r.run.body.result as { success: boolean }).success).toBe(true);
  expect(r.jobStatusPv).toBe("SUCCESS");
  expect(r.removeTask).toBe(200);
  expect(r.removeJob).toBe(200);
  expect((r.tasksAfter as { count: number }).count).toBe(0);
}
