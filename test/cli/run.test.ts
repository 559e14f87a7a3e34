import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually, freePort } from "../binary/serve-process.ts";
import { runPy } from "../helpers/ca-harness.ts";
import { loopbackEpicsEnv } from "../helpers/loopback-env.ts";

const ROOT = join(import.meta.dir, "..", "..");
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "iocmng-run-test-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

async function runEnv() {
  const caPort = await freePort();
  return {
    caPort,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: work,
      IOCMNG_LOG_PRETTY: "0",
      IOCMNG_PREFIX: "RUNTEST",
      ...loopbackEpicsEnv(caPort, await freePort()),
    },
  };
}

describe("iocmng run", () => {
  test("serves a task's PVs on CA until SIGINT, then exits 0", async () => {
    const { caPort, env } = await runEnv();
    const proc = Bun.spawn(
      [
        process.execPath,
        join(ROOT, "src/main.ts"),
        "run",
        join(ROOT, "examples/ramp-task"),
        "--name",
        "dev-ramp",
        "--params",
        '{"interval": 0.1, "rate": 1000}',
      ],
      { env, stdout: "pipe", stderr: "pipe" },
    );
    let out = "";
    const reader = (async () => {
      for await (const c of proc.stdout) out += new TextDecoder().decode(c);
    })();
    try {
      await eventually(
        async () => (out.includes("Ctrl-C stops") ? true : undefined),
        "run to load the plugin",
        60_000,
      );
      expect(out).toContain(`task 'dev-ramp' running; Channel Access on TCP ${caPort}`);
      expect(out).toContain("RUNTEST:DEV-RAMP:SETPOINT  (writable)");
      const r = (await runPy(
        caPort,
        `
epics.caput("RUNTEST:DEV-RAMP:SETPOINT", -7.25, wait=True, timeout=20)
deadline = time.time() + 30
v = None
while time.time() < deadline:
    v = epics.caget("RUNTEST:DEV-RAMP:READING", timeout=10, use_monitor=False)
    if v == -7.25:
        break
    time.sleep(0.1)
out(v)
`,
      )) as number;
      expect(r).toBe(-7.25);
    } finally {
      proc.kill("SIGINT");
    }
    expect(await proc.exited).toBe(0);
    await reader;
  }, 120_000);

  test("--once runs a job and prints its result", async () => {
    const { env } = await runEnv();
    const p = Bun.spawnSync(
      [
        process.execPath,
        join(ROOT, "src/main.ts"),
        "run",
        join(ROOT, "examples/diagnostics-job"),
        "--once",
      ],
      { env, stdout: "pipe", stderr: "pipe" },
    );
    const out = p.stdout.toString();
    expect(p.exitCode).toBe(0);
    expect(out).toContain("job 'diagnostics-job' running");
    const last = JSON.parse(out.trim().split("\n").at(-1) ?? "null");
    expect(last.success).toBe(true);
    expect(last.message).toBe("Diagnostics OK");
  }, 120_000);

  test("an invalid plugin: exit 1, the failing step, nothing served", async () => {
    const { env } = await runEnv();
    const dir = join(work, "broken");
    mkdirSync(dir);
    writeFileSync(join(dir, "config.yaml"), "parameters:\n  mode: sometimes\n");
    writeFileSync(
      join(dir, "broken.ts"),
      'import { TaskBase } from "iocmng";\nexport class B extends TaskBase {}\n',
    );
    const p = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), "run", dir, "--once"], {
      env,
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(p.exitCode).toBe(1);
    const err = p.stderr.toString();
    expect(err).toMatch(/FAIL config: /);
    expect(err).toMatch(/iocmng run: invalid plugin: step 'config' failed: /);
    expect(p.stdout.toString()).toBe("");
  }, 60_000);

  test("bad --params and a missing directory are refused before anything starts", () => {
    const bad = Bun.spawnSync(
      [
        process.execPath,
        join(ROOT, "src/main.ts"),
        "run",
        join(ROOT, "examples/ramp-task"),
        "--params",
        "[1,2]",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toContain("--params must be a JSON object");
    const missing = Bun.spawnSync(
      [process.execPath, join(ROOT, "src/main.ts"), "run", join(work, "does-not-exist")],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr.toString()).toContain("no such directory");
  });
});
