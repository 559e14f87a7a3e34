#!/usr/bin/env bun
/**
 * Builds the publishable `iocmng` SDK package from the server's own sources (src/sdk) plus the
 * test harness (packages/sdk/src/testing.ts), so there is one SDK and no copy to drift:
 *
 *   dist/index.js     TaskBase, JobBase, JobResult, … (bundled src/sdk/index.ts)
 *   dist/testing.js   runLifecycle() (shares dist's chunk with index.js: one TaskBase class)
 *   dist/types/...    declarations from tsc (type-checks the sources on the way)
 *
 *   bun packages/sdk/build.ts [outdir]      (default packages/sdk/dist)
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const HERE = import.meta.dir;
const ROOT = join(HERE, "..", "..");

/** Fails when packages/sdk/package.json and the product disagree on the version. */
export function checkVersion(): string {
  const product = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;
  const sdk = JSON.parse(readFileSync(join(HERE, "package.json"), "utf8")).version as string;
  if (product !== sdk) {
    throw new Error(`packages/sdk/package.json version ${sdk} != package.json version ${product}`);
  }
  return sdk;
}

function walk(dir: string, out: string[]): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/** Builds the package into `outdir`; throws with the compiler's messages on failure. */
export async function buildSdk(outdir = join(HERE, "dist")): Promise<void> {
  checkVersion();
  outdir = resolve(outdir);
  rmSync(outdir, { recursive: true, force: true });
  let result: Bun.BuildOutput;
  try {
    result = await Bun.build({
      entrypoints: [join(ROOT, "src/sdk/index.ts"), join(HERE, "src/testing.ts")],
      outdir,
      target: "bun",
      format: "esm",
      // One shared chunk: the harness's TaskBase must be the very class plugins import.
      splitting: true,
      naming: { entry: "[name].js", chunk: "chunk-[hash].js" },
      sourcemap: "linked",
    });
  } catch (e) {
    const errors = e instanceof AggregateError ? e.errors : [e];
    throw new Error(`bundling the SDK failed: ${errors.map(String).join("; ")}`);
  }
  if (!result.success) throw new Error(`bundling the SDK failed: ${result.logs.join("; ")}`);

  const typesDir = join(outdir, "types");
  const tsc = Bun.spawnSync(
    [
      process.execPath,
      join(ROOT, "node_modules/typescript/bin/tsc"),
      "-p",
      join(HERE, "tsconfig.json"),
      "--outDir",
      typesDir,
    ],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env, BUN_BE_BUN: "1" } },
  );
  if (tsc.exitCode !== 0) {
    throw new Error(`tsc failed:\n${tsc.stdout.toString()}${tsc.stderr.toString()}`);
  }
  // Our sources import "./x.ts"; published declarations must name the emitted "./x.js".
  for (const f of walk(typesDir, [])) {
    if (!f.endsWith(".d.ts")) continue;
    const text = readFileSync(f, "utf8");
    const fixed = text.replace(/(from\s+["'])(\.{1,2}\/[^"']*)\.ts(["'])/g, "$1$2.js$3");
    if (fixed !== text) writeFileSync(f, fixed);
  }
}

if (import.meta.main) {
  try {
    await buildSdk(process.argv[2]);
    console.log(
      `built the iocmng SDK ${checkVersion()} into ${resolve(process.argv[2] ?? join(HERE, "dist"))}`,
    );
  } catch (e) {
    console.error(`build:sdk: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  }
}
