/**
 * The container image's file tree, checked without a Docker engine: scripts/rootfs.sh assembles
 * it from this machine's files, then we chroot into it (as the image's unprivileged user) and run
 * what the image runs. Needs root (chroot, mounting /proc and /dev into the tree).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, buildBinary } from "../../scripts/build.ts";
import { VERSION } from "../../src/version.ts";
import { serverEnv, startServe } from "../binary/serve-process.ts";
import {
  caClientEnv,
  expectSmokePassed,
  makeCaJob,
  makeExamplesRepo,
  runSmoke,
} from "../binary/smoke.ts";

const ROOT = join(import.meta.dir, "..", "..");
const UID = 10001;
const CHROOT = Bun.which("chroot") ?? Bun.which("chroot", { PATH: "/usr/sbin:/sbin" });
const isRoot = process.getuid?.() === 0 && CHROOT !== null;

/**
 * Whether this machine lets us mount /proc (root in an unprivileged container may not: no
 * CAP_SYS_ADMIN). Without it the tree cannot be checked here; the test says so instead of failing
 * for a reason that has nothing to do with the tree. The release workflow runs privileged.
 */
function canMountProc(): boolean {
  if (!isRoot) return false;
  const probe = mkdtempSync(join(tmpdir(), "iocmng-mount-probe-"));
  try {
    const m = Bun.spawnSync(["mount", "-t", "proc", "proc", probe], { stderr: "pipe" });
    if (m.exitCode !== 0) {
      console.warn(`test/rootfs skipped: cannot mount /proc (${m.stderr.toString().trim()})`);
      return false;
    }
    Bun.spawnSync(["umount", probe]);
    return true;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
const canRun = canMountProc();

let work: string;
let tree: string;
let treeBytes = 0;
const mounted: string[] = [];

function sh(cmd: string[], env: Record<string, string> = { PATH: "/usr/bin:/bin" }) {
  const p = Bun.spawnSync(cmd, { env, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** Environment inside the image (what the Dockerfile sets), nothing from the host. */
const IMAGE_ENV = {
  PATH: "/usr/local/bin:/usr/bin",
  HOME: "/data",
  TMPDIR: "/tmp",
  IOCMNG_PLUGINS_DIR: "/data/plugins",
  IOCMNG_STATE_DIR: "/data/state",
  IOCMNG_LOG_PRETTY: "0",
  MIMALLOC_PURGE_DELAY: "1000",
  MIMALLOC_PURGE_HOLES_MIN_INTERVAL: "1000",
};

/** Runs `argv` inside the tree as the image's user. */
function inTree(argv: string[], env: Record<string, string> = {}) {
  return sh([CHROOT!, `--userspec=${UID}:${UID}`, tree, ...argv], { ...IMAGE_ENV, ...env });
}

function chownTree(dir: string): void {
  chownSync(dir, UID, UID);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) chownTree(p);
    else chownSync(p, UID, UID);
  }
}

describe.skipIf(!canRun)("image tree (scripts/rootfs.sh + chroot)", () => {
  beforeAll(async () => {
    await buildBinary({ quiet: true });
    work = mkdtempSync(join(tmpdir(), "iocmng-rootfs-"));
    tree = join(work, "tree");
    const r = sh(["sh", join(ROOT, "scripts/rootfs.sh"), tree, BINARY]);
    if (r.code !== 0) throw new Error(`rootfs.sh failed: ${r.err}`);
    // Measured before /proc and /dev are mounted into it (docs/container.md reports it).
    treeBytes = Number(sh(["du", "-sb", tree]).out.split("\t")[0]);
    console.log(`image tree: ${(treeBytes / 1e6).toFixed(1)} MB (${r.out.trim()})`);
    // What a container runtime provides: /proc (Bun reads /proc/self/exe) and /dev (git opens
    // /dev/null).
    for (const [args, target] of [
      [["-t", "proc", "proc"], join(tree, "proc")],
      [["--bind", "/dev"], join(tree, "dev")],
    ] as const) {
      const m = sh(["mount", ...args, target]);
      if (m.code !== 0) throw new Error(`mount ${target}: ${m.err}`);
      mounted.unshift(target);
    }
    makeExamplesRepo(join(tree, "data", "repo"));
    chownTree(join(tree, "data", "repo"));
    makeCaJob(join(tree, "data", "ca-job"));
    chownTree(join(tree, "data", "ca-job"));
  }, 300_000);

  afterAll(() => {
    for (const m of mounted) sh(["umount", "-l", m]);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("holds only the run-time pieces: no shell tools beyond sh, no package manager", () => {
    expect(existsSync(join(tree, "usr/local/bin/iocmng"))).toBe(true);
    expect(existsSync(join(tree, "usr/lib/x86_64-linux-gnu/libca.so.4.13.5"))).toBe(true);
    expect(existsSync(join(tree, "etc/ssl/certs/ca-certificates.crt"))).toBe(true);
    for (const absent of ["usr/bin/apt-get", "usr/bin/curl", "usr/bin/bash", "usr/bin/python3"]) {
      expect(existsSync(join(tree, absent))).toBe(false);
    }
    expect(statSync(join(tree, "data")).uid).toBe(UID);
    // The binary is ~116 MB; everything else must stay small (a regression guard, not a timing).
    expect(treeBytes - statSync(join(tree, "usr/local/bin/iocmng")).size).toBeLessThan(40e6);
  });

  test("iocmng --version runs as the unprivileged user", () => {
    const r = inTree(["/usr/local/bin/iocmng", "--version"]);
    expect(r.err).toBe("");
    expect(r.out.trim()).toBe(VERSION);
  });

  test("git clones a file:// repository inside the tree", () => {
    const r = inTree([
      "/usr/bin/git",
      "clone",
      "-q",
      "--depth",
      "1",
      "file:///data/repo",
      "/tmp/c",
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(existsSync(join(tree, "tmp/c/examples/ramp-task/config.yaml"))).toBe(true);
  });

  test("git's https transport starts (helper and its libraries resolve; no network needed)", () => {
    // An unroutable name fails at DNS, after git-remote-https and libcurl have loaded.
    const r = inTree(["/usr/bin/git", "ls-remote", "https://nonexistent.invalid/x.git"]);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("Could not resolve host");
    expect(r.err).not.toContain("error while loading shared libraries");
  });

  test("libca loads inside the tree (BUN_BE_BUN dlopen through bun:ffi)", () => {
    const r = inTree(
      [
        "/usr/local/bin/iocmng",
        "-e",
        "const l = require('bun:ffi').dlopen('libca.so.4.13.5', { ca_context_create: { args: ['i32'], returns: 'i32' } }); console.log(typeof l.symbols.ca_context_create)",
      ],
      { BUN_BE_BUN: "1" },
    );
    expect(r.err).toBe("");
    expect(r.out.trim()).toBe("function");
  });

  test("a plugin's this.ca works in the image (no compiler files: TinyCC links no libc.so)", async () => {
    const { env, caPort } = await serverEnv({ ...IMAGE_ENV, IOCMNG_PREFIX: "IMGCA" });
    const r = inTree(
      [
        "/usr/local/bin/iocmng",
        "run",
        "/data/ca-job",
        "--once",
        "--params",
        '{"pv": "IMGCA:CA-JOB:ECHO"}',
      ],
      { ...env, ...IMAGE_ENV, ...caClientEnv(caPort) },
    );
    const result = JSON.parse(r.out.trim().split("\n").at(-1) ?? "null");
    expect(result).toEqual(expect.objectContaining({ success: true, data: { value: 42.5 } }));
    expect(r.code).toBe(0);
  }, 120_000);

  test("serves: REST + CA from the chroot, plugin cloned from file:// inside it, PVs read with pyepics outside", async () => {
    const { env, httpPort, caPort } = await serverEnv({ ...IMAGE_ENV, IOCMNG_PREFIX: "IMG" });
    const sp = await startServe(
      [CHROOT!, `--userspec=${UID}:${UID}`, tree, "/usr/local/bin/iocmng", "serve"],
      { env, httpPort, caPort },
    );
    try {
      const health = inTree([
        "/usr/local/bin/iocmng",
        "health",
        "--url",
        `http://127.0.0.1:${httpPort}/api/v1/health`,
      ]);
      expect(health.code).toBe(0);
      const r = await runSmoke(sp, "file:///data/repo", "IMG");
      expectSmokePassed(r);
    } finally {
      expect(await sp.stop()).toBe(0);
    }
  }, 240_000);
});
