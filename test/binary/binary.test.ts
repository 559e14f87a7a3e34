import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, buildBinary } from "../../scripts/build.ts";
import { VERSION } from "../../src/version.ts";
import { udpSearch } from "../helpers/pva-client.ts";
import { freePort, serverEnv, startServe } from "./serve-process.ts";
import { caClientEnv, expectSmokePassed, makeCaJob, makeExamplesRepo, runSmoke } from "./smoke.ts";

const ROOT = join(import.meta.dir, "..", "..");
let work: string;

function bin(args: string[], env: Record<string, string> = {}, cwd = work) {
  const p = Bun.spawnSync([BINARY, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

beforeAll(async () => {
  // Rebuilt only when an input changed (hash of src/, ffi/, package.json, bun.lock, …).
  await buildBinary({ quiet: true });
  work = mkdtempSync(join(tmpdir(), "iocmng-bin-"));
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("dist/iocmng", () => {
  test("--version and --help work without Bun or the sources (run from an empty dir)", () => {
    const v = bin(["--version"]);
    expect(v.code).toBe(0);
    expect(v.out.trim()).toBe(VERSION);
    const h = bin(["--help"]);
    expect(h.code).toBe(0);
    expect(h.out).toContain("validate");
  });

  test("usage errors: exit 2, one line, no stack", () => {
    const r = bin(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });

  test("BUN_BE_BUN=1 makes it Bun: installs a plugin's file: dependency", () => {
    expect(bin(["--version"], { BUN_BE_BUN: "1" }).out.trim()).toBe(Bun.version);
    const plugin = join(work, "with-dep");
    mkdirSync(join(plugin, "local-dep"), { recursive: true });
    writeFileSync(
      join(plugin, "local-dep", "package.json"),
      JSON.stringify({ name: "local-dep", version: "1.0.0", main: "index.js" }),
    );
    writeFileSync(join(plugin, "local-dep", "index.js"), "module.exports = 42;\n");
    writeFileSync(
      join(plugin, "package.json"),
      JSON.stringify({ name: "p", dependencies: { "local-dep": "file:./local-dep" } }),
    );
    const r = bin(["install", "--production", "--no-progress"], { BUN_BE_BUN: "1" }, plugin);
    expect(`${r.out}${r.err}`).not.toContain("error:");
    expect(r.code).toBe(0);
    expect(existsSync(join(plugin, "node_modules", "local-dep", "index.js"))).toBe(true);
  });

  test("validate runs the whole pipeline (worker import of 'iocmng') inside the binary", () => {
    for (const ex of ["ramp-task", "snapshot-task", "diagnostics-job"]) {
      const r = bin(["validate", join(ROOT, "examples", ex)]);
      expect(`${ex}: ${r.err}`).toBe(`${ex}: `);
      expect(r.code).toBe(0);
      expect(r.out).toContain("valid ");
    }
    const bad = join(work, "bad-plugin");
    mkdirSync(bad);
    writeFileSync(join(bad, "x.ts"), "export class NotAPlugin {}\n");
    const r = bin(["validate", bad]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^iocmng validate: invalid plugin: step '/);
  });

  test("run --once loads a job through the full pipeline and prints its result", async () => {
    const { env } = await serverEnv({ HOME: work, IOCMNG_PREFIX: "BINRUN" });
    const r = bin(["run", join(ROOT, "examples/diagnostics-job"), "--once"], env);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out.trim().split("\n").at(-1) ?? "null");
    expect(result.success).toBe(true);
    expect(result.data.runtime).toBe(`bun ${Bun.version}`);
  });

  test("a plugin's this.ca works inside the binary (libca + the TinyCC callback shim)", async () => {
    const { env, caPort } = await serverEnv({ HOME: work, IOCMNG_PREFIX: "BINCA" });
    const dir = makeCaJob(join(work, "ca-job"));
    const r = bin(["run", dir, "--once", "--params", '{"pv": "BINCA:CA-JOB:ECHO"}'], {
      ...env,
      ...caClientEnv(caPort),
    });
    const result = JSON.parse(r.out.trim().split("\n").at(-1) ?? "null");
    expect(result).toEqual(expect.objectContaining({ success: true, data: { value: 42.5 } }));
    expect(r.code).toBe(0);
  }, 120_000);

  test("without libca the server still loads and serves the plugin; its this.ca call fails naming the package", async () => {
    const { env, caPort } = await serverEnv({ HOME: work, IOCMNG_PREFIX: "NOLIBCA" });
    const dir = makeCaJob(join(work, "ca-job-nolib"));
    const r = bin(["run", dir, "--once", "--params", '{"pv": "NOLIBCA:CA-JOB-NOLIB:ECHO"}'], {
      ...env,
      ...caClientEnv(caPort),
      IOCMNG_LIBCA: "/nonexistent/libca.so.4.13.5",
    });
    expect(r.out).toContain("NOLIBCA:CA-JOB-NOLIB:ECHO");
    const result = JSON.parse(r.out.trim().split("\n").at(-1) ?? "null");
    expect(result.success).toBe(false);
    expect(result.message).toContain("apt-get install libca4.13.5");
    expect(r.code).toBe(1);
  }, 120_000);

  test("pvAccess searches are answered by the search thread embedded in the binary", async () => {
    const pvaUdp = await freePort();
    const { env, httpPort, caPort } = await serverEnv({
      HOME: work,
      IOCMNG_PLUGINS_DIR: join(work, "plugins-pva"),
      IOCMNG_STATE_DIR: join(work, "state-pva"),
      EPICS_PVAS_BROADCAST_PORT: String(pvaUdp),
    });
    const sp = await startServe([BINARY, "serve"], { env, httpPort, caPort });
    try {
      // A must-reply search is answered even for an unknown name: the worker is running.
      const replies = await udpSearch(pvaUdp, ["NO:SUCH:PV"], { mustReply: true });
      expect(replies.length).toBe(1);
      expect(sp.output()).not.toContain("search thread error");
    } finally {
      expect(await sp.stop()).toBe(0);
    }
  }, 120_000);

  test("smoke: serve, add the example task from a git repo, operate its PVs with pyepics, run a job", async () => {
    const repo = makeExamplesRepo(join(work, "repo"));
    const { env, httpPort, caPort } = await serverEnv({
      HOME: work,
      IOCMNG_PLUGINS_DIR: join(work, "plugins"),
      IOCMNG_STATE_DIR: join(work, "state"),
      IOCMNG_PREFIX: "BINSMOKE",
      // Pretty logs go through pino-pretty in-process: this would crash a compiled binary if they
      // were a pino transport.
      IOCMNG_LOG_PRETTY: "1",
    });
    const sp = await startServe([BINARY, "serve"], { env, httpPort, caPort });
    try {
      const health = bin(["health", "--url", `${sp.api}/health`]);
      expect(health.code).toBe(0);
      const r = await runSmoke(sp, `file://${repo}`, "BINSMOKE");
      expectSmokePassed(r);
    } finally {
      const code = await sp.stop();
      expect(code).toBe(0);
    }
  }, 240_000);
});
