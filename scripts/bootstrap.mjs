#!/usr/bin/env node
// Bootstrap for the two set-up commands (`npm start`, `npm test`).
// Runs on plain Node.js (no dependencies) so a fresh machine with only Node/npm, git and apt works:
// it fetches the pinned Bun through npm when needed, installs locked dependencies, and for tests
// the Debian packages the integration tests talk to (libca through pyepics).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const BUN_VERSION = pkg.engines.bun;
// chromium: the console's browser test (playwright-core drives it; no browser is ever downloaded).
const APT_PACKAGES = ["python3-pyepics", "libca4.13.5", "git", "chromium"];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function must(cmd, args, opts) {
  const code = run(cmd, args, opts);
  if (code !== 0) {
    console.error(`bootstrap: '${cmd} ${args.join(" ")}' failed with exit code ${code}`);
    process.exit(code);
  }
}

function bunVersionOf(bin) {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Returns a path to Bun at the pinned version, installing it under .tools/ when absent. */
function ensureBun() {
  if (bunVersionOf("bun") === BUN_VERSION) return "bun";
  const local = join(root, ".tools", "node_modules", "bun", "bin", "bun.exe");
  if (existsSync(local) && bunVersionOf(local) === BUN_VERSION) return local;
  console.error(`bootstrap: installing bun@${BUN_VERSION} via npm into .tools/`);
  // The npm package ships the binary; its postinstall only relinks it, so scripts are not needed.
  must("npm", [
    "install",
    "--prefix",
    join(root, ".tools"),
    "--no-audit",
    "--no-fund",
    "--no-save",
    `bun@${BUN_VERSION}`,
  ]);
  if (bunVersionOf(local) !== BUN_VERSION) {
    console.error(`bootstrap: bun@${BUN_VERSION} did not install at ${local}`);
    process.exit(1);
  }
  return local;
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: a dpkg-query format string, not JS.
const DPKG_STATUS_FORMAT = "-f=${Status}";

function isInstalled(pkgName) {
  const r = spawnSync("dpkg-query", ["-W", DPKG_STATUS_FORMAT, pkgName], { encoding: "utf8" });
  return r.status === 0 && r.stdout.includes("install ok installed");
}

function ensureAptPackages() {
  const missing = APT_PACKAGES.filter((p) => !isInstalled(p));
  if (missing.length === 0) return;
  if (spawnSync("apt-get", ["--version"]).status !== 0) {
    console.error(`bootstrap: apt-get not available; please install: ${missing.join(" ")}`);
    process.exit(1);
  }
  console.error(`bootstrap: installing Debian packages: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  // apt-get update once, only when something is missing (a package list may be absent on fresh hosts).
  must("apt-get", ["update", "-qq"], { env });
  must("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env });
}

const mode = process.argv[2] ?? "start";
const bun = ensureBun();
// Tests and the runtime spawn `bun` by name: put the pinned binary first on PATH.
const pathEnv = { ...process.env };
if (bun !== "bun") {
  const shim = join(root, ".tools", "bin");
  mkdirSync(shim, { recursive: true });
  if (!existsSync(join(shim, "bun"))) symlinkSync(bun, join(shim, "bun"));
  pathEnv.PATH = `${shim}:${process.env.PATH}`;
}
must(bun, ["install", "--frozen-lockfile"], { env: pathEnv });

if (mode === "start") {
  process.exit(run(bun, ["src/main.ts", "serve", ...process.argv.slice(3)], { env: pathEnv }));
} else if (mode === "test") {
  ensureAptPackages();
  must(bun, ["x", "tsc", "--noEmit", "-p", "."], { env: pathEnv });
  // The browser console has its own project (DOM types and JSX would clash with Bun's types).
  must(bun, ["x", "tsc", "--noEmit", "-p", "src/web/console"], { env: pathEnv });
  must(bun, ["x", "biome", "check", "."], { env: pathEnv });
  const junit = process.env.IOCMNG_JUNIT ?? join(root, ".test-results", "junit.xml");
  mkdirSync(dirname(junit), { recursive: true });
  const code = run(
    bun,
    // bunfig.toml's [test] timeout is not applied by Bun 1.4.4, so the per-test limit is given
    // here: integration tests spawn real peers (pyepics, git, plugin processes), and a loaded CI
    // host must not turn a slow start into a failure. No test asserts on time.
    [
      "test",
      "--timeout=60000",
      "--reporter=junit",
      `--reporter-outfile=${junit}`,
      ...process.argv.slice(3),
    ],
    { env: pathEnv },
  );
  process.exit(code);
} else {
  console.error(`bootstrap: unknown mode '${mode}' (expected start or test)`);
  process.exit(2);
}
