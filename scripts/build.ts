#!/usr/bin/env bun
/**
 * Builds `dist/iocmng`, the single executable (`bun build --compile`), and records a hash of its
 * inputs next to it so tests and scripts can skip a rebuild when nothing changed.
 *
 *   bun run build            # build if sources changed since the last build
 *   bun run build --force    # always build
 *   bun run build --check    # exit 0 if dist/iocmng is up to date, 1 otherwise
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

/** Repository root (this file lives in scripts/). */
export const ROOT = join(import.meta.dir, "..");
/** Where the executable is written. */
export const BINARY = join(ROOT, "dist", "iocmng");
const STAMP = `${BINARY}.inputs-sha256`;

/**
 * Every entrypoint bundled into the executable. Plugin workers are started with
 * `new Worker(new URL("./worker.ts", import.meta.url))`; Bun embeds a worker in a compiled binary
 * only when its file is listed as an additional entrypoint.
 */
export const ENTRYPOINTS = ["src/main.ts", "src/plugins/worker.ts"];

const INPUT_DIRS = ["src", "ffi"];
const INPUT_FILES = ["package.json", "bun.lock", "tsconfig.json", "scripts/build.ts"];

function listFiles(dir: string, out: string[]): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) listFiles(p, out);
    else if (entry.isFile()) out.push(p);
  }
}

/** SHA-256 over the paths and contents of everything that ends up in the binary. */
export function inputsHash(): string {
  const files: string[] = [];
  for (const d of INPUT_DIRS) listFiles(join(ROOT, d), files);
  for (const f of INPUT_FILES) if (existsSync(join(ROOT, f))) files.push(join(ROOT, f));
  files.sort();
  const h = createHash("sha256");
  h.update(Bun.version);
  for (const f of files) {
    h.update(relative(ROOT, f));
    h.update("\0");
    h.update(readFileSync(f));
    h.update("\0");
  }
  return h.digest("hex");
}

/** True when dist/iocmng exists and was built from the current inputs. */
export function isUpToDate(): boolean {
  if (!existsSync(BINARY) || !existsSync(STAMP)) return false;
  return readFileSync(STAMP, "utf8").trim() === inputsHash();
}

/** Builds dist/iocmng unless it is up to date (or `force`); returns whether it built. */
export async function buildBinary(opts: { force?: boolean; quiet?: boolean } = {}) {
  const hash = inputsHash();
  if (!opts.force && existsSync(BINARY) && existsSync(STAMP)) {
    if (readFileSync(STAMP, "utf8").trim() === hash) {
      if (!opts.quiet) console.log(`dist/iocmng is up to date (${hash.slice(0, 12)})`);
      return false;
    }
  }
  mkdirSync(join(ROOT, "dist"), { recursive: true });
  const entrypoints = ENTRYPOINTS.filter((e) => existsSync(join(ROOT, e))).map((e) =>
    join(ROOT, e),
  );
  const started = performance.now();
  let result: Bun.BuildOutput;
  try {
    result = await Bun.build({
      entrypoints,
      root: ROOT,
      minify: true,
      // Errors in the field still point at src/ lines.
      sourcemap: "linked",
      // Pre-parsed bytecode: shorter cold start (see docs/bench/binary.md).
      bytecode: true,
      format: "esm",
      compile: {
        outfile: BINARY,
        // A deployed binary must not change behaviour because of a stray .env or bunfig.toml in
        // whatever directory it is started from.
        autoloadDotenv: false,
        autoloadBunfig: false,
      },
    });
  } catch (e) {
    // Bun.build rejects with an AggregateError whose errors are the resolve/parse messages.
    const errors = e instanceof AggregateError ? e.errors : [e];
    throw new Error(`bun build --compile failed: ${errors.map(String).join("; ")}`);
  }
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error("bun build --compile failed");
  }
  writeFileSync(STAMP, `${hash}\n`);
  if (!opts.quiet) {
    const mb = (statSync(BINARY).size / 1e6).toFixed(1);
    const s = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`built dist/iocmng (${mb} MB) in ${s} s from ${entrypoints.length} entrypoints`);
  }
  return true;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== "--force" && a !== "--check");
  if (unknown.length > 0) {
    console.error(`build: unknown argument ${unknown[0]} (expected --force or --check)`);
    process.exit(2);
  }
  if (args.includes("--check")) process.exit(isUpToDate() ? 0 : 1);
  try {
    await buildBinary({ force: args.includes("--force") });
  } catch (e) {
    console.error(`build: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  }
}
