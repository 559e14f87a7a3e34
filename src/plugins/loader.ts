/**
 * The filesystem half of the loader pipeline: resolving `path` inside a clone, installing a
 * plugin's npm dependencies with the running executable, the syntax check, and the choice of the
 * files to import. Each function throws a StepError naming its pipeline step.
 */
import { lstat, readdir, readFile, realpath, stat } from "node:fs/promises";
import { extname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { MAX_PLUGIN_PATH } from "../common/add-request.ts";
import { errorMessage } from "../common/errors.ts";
import { StepError } from "./report.ts";
import { runBounded } from "./spawn.ts";
import type { PipelineStep } from "./types.ts";

/** Resolves `path` inside `root`; refuses absolute paths, `..` and symlinks leading outside. */
export async function resolvePluginDir(root: string, path: string | undefined): Promise<string> {
  const p = path ?? "";
  if (typeof p !== "string" || p.length > MAX_PLUGIN_PATH) {
    throw new StepError("path", `path must be a string of at most ${MAX_PLUGIN_PATH} characters`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\x00-\x1f\x7f\\]/.test(p)) {
    throw new StepError("path", "path contains control characters or backslashes");
  }
  if (isAbsolute(p)) throw new StepError("path", `path "${p}" must be relative to the repository`);
  if (p.split("/").includes("..")) throw new StepError("path", `path "${p}" must not contain ".."`);
  const realRoot = await realpath(root);
  const target = resolve(realRoot, p);
  let real: string;
  try {
    real = await realpath(target);
  } catch {
    throw new StepError("path", `path "${p}" does not exist in the repository`);
  }
  if (real !== realRoot && !real.startsWith(realRoot + sep)) {
    throw new StepError("path", `path "${p}" leads outside the repository (symlink)`);
  }
  const st = await stat(real);
  if (!st.isDirectory()) throw new StepError("path", `path "${p}" is not a directory`);
  return real;
}

/**
 * Refuses plugin files (config, package.json, entry modules) whose real path leaves the clone
 * through a symlink: the server must not read or import files outside what was cloned. Absent
 * files are skipped (the step that needs them reports it).
 */
export async function checkInsideClone(
  root: string,
  files: string[],
  step: PipelineStep,
): Promise<void> {
  const realRoot = await realpath(root);
  for (const f of files) {
    let real: string;
    try {
      real = await realpath(f);
    } catch {
      continue;
    }
    if (real !== realRoot && !real.startsWith(realRoot + sep)) {
      throw new StepError(step, `${relative(realRoot, f)} leads outside the repository (symlink)`);
    }
  }
}

/** Files of the plugin directory read by the server itself before any import. */
export function pluginMetaFiles(dir: string): string[] {
  return ["config.yaml", "config.yml", "package.json"].map((n) => join(dir, n));
}

const SOURCE_EXT = new Set([".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs"]);
const MAX_SOURCE_FILES = 2000;
const MAX_SOURCE_BYTES = 8 << 20;

function loaderFor(file: string): "ts" | "tsx" | "js" | "jsx" {
  const e = extname(file);
  if (e === ".tsx") return "tsx";
  if (e === ".jsx") return "jsx";
  if (e === ".js" || e === ".mjs" || e === ".cjs") return "js";
  return "ts";
}

/** Source files of the plugin (recursively, skipping node_modules and dot-directories). */
export async function listSources(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      if (e.name.startsWith(".") || e.name === "node_modules") continue;
      const full = join(d, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile() && SOURCE_EXT.has(extname(e.name)) && !e.name.endsWith(".d.ts")) {
        out.push(full);
        if (out.length > MAX_SOURCE_FILES) {
          throw new StepError("syntax", `more than ${MAX_SOURCE_FILES} source files in the plugin`);
        }
      }
    }
  };
  await walk(dir);
  return out;
}

/** Transpiles every source file; throws a StepError("syntax") naming file, line and column. */
export async function syntaxCheck(dir: string): Promise<number> {
  const files = await listSources(dir);
  const transpilers = new Map<string, Bun.Transpiler>();
  for (const f of files) {
    const st = await lstat(f);
    if (st.size > MAX_SOURCE_BYTES) {
      throw new StepError(
        "syntax",
        `${relative(dir, f)}: larger than ${MAX_SOURCE_BYTES >> 20} MiB`,
      );
    }
    const loader = loaderFor(f);
    let t = transpilers.get(loader);
    if (!t) {
      t = new Bun.Transpiler({ loader });
      transpilers.set(loader, t);
    }
    try {
      t.transformSync(await readFile(f, "utf8"));
    } catch (e) {
      const pos = (e as { position?: { line?: number; column?: number } }).position;
      const where = pos?.line ? `:${pos.line}:${pos.column ?? 0}` : "";
      throw new StepError("syntax", `${relative(dir, f)}${where}: ${errorMessage(e)}`);
    }
  }
  return files.length;
}

/** Reads dir/package.json if present (null when absent); throws StepError on a malformed file. */
async function readPackageJson(
  dir: string,
  step: PipelineStep,
): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(join(dir, "package.json"), "utf8");
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch (e) {
    throw new StepError(step, `package.json is not valid JSON: ${(e as Error).message}`);
  }
}

/** Dependencies the package.json declares (npm "dependencies" only; dev ones are the author's). */
function declaredDependencies(pkg: Record<string, unknown>): string[] {
  const deps = pkg.dependencies;
  if (deps === undefined) return [];
  if (deps === null || typeof deps !== "object" || Array.isArray(deps)) {
    throw new StepError("dependencies", "package.json: dependencies must be an object");
  }
  // "iocmng" is provided by the runtime itself (a virtual module): never install it.
  return Object.keys(deps).filter((d) => d !== "iocmng");
}

/**
 * Installs the plugin's npm dependencies with the running executable acting as Bun
 * (`BUN_BE_BUN=1`), so the compiled binary needs no separate Bun. Returns a summary.
 */
export async function installDependencies(
  dir: string,
  timeoutMs = 300_000,
  signal?: AbortSignal,
): Promise<string> {
  const pkg = await readPackageJson(dir, "dependencies");
  if (!pkg) return "no package.json";
  const deps = declaredDependencies(pkg);
  if (deps.length === 0) return "no dependencies to install";
  const { out, err, code, timedOut } = await runBounded(
    [process.execPath, "install", "--production", "--no-save", "--no-progress", "--ignore-scripts"],
    {
      cwd: dir,
      env: { ...process.env, BUN_BE_BUN: "1", NO_COLOR: "1" },
      ...(signal ? { signal } : {}),
    },
    timeoutMs,
  );
  if (signal?.aborted) throw new StepError("dependencies", "stopped: the server is shutting down");
  if (timedOut)
    throw new StepError("dependencies", `install timed out after ${timeoutMs / 1000} s`);
  if (code !== 0) {
    const lines = `${err}\n${out}`
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.length > 0);
    throw new StepError(
      "dependencies",
      `install failed (exit ${code}): ${lines.slice(-4).join("; ").slice(0, 800)}`,
    );
  }
  return `installed ${deps.length} dependenc${deps.length === 1 ? "y" : "ies"}: ${deps.join(", ")}`;
}

const ENTRY_NAMES = ["index.ts", "index.mts", "index.tsx", "index.js", "index.mjs"];

/**
 * Files to import: package.json `module`/`main` if set, else index.*, else every top-level source
 * file (tests and declarations excluded). Throws StepError("import") when there is none.
 */
export async function entryFiles(dir: string): Promise<string[]> {
  const pkg = await readPackageJson(dir, "import");
  for (const key of ["module", "main"] as const) {
    const v = pkg?.[key];
    if (typeof v === "string" && v.length > 0) {
      const f = resolve(dir, v);
      if (!f.startsWith(dir + sep)) {
        throw new StepError("import", `package.json ${key} "${v}" points outside the plugin`);
      }
      const ok = await stat(f).then(
        (s) => s.isFile(),
        () => false,
      );
      if (!ok) throw new StepError("import", `package.json ${key} "${v}" does not exist`);
      return [f];
    }
  }
  for (const n of ENTRY_NAMES) {
    const f = join(dir, n);
    if (
      await stat(f).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return [f];
  }
  const top = (await readdir(dir, { withFileTypes: true }))
    .filter(
      (e) =>
        e.isFile() &&
        SOURCE_EXT.has(extname(e.name)) &&
        !e.name.endsWith(".d.ts") &&
        !/\.(test|spec)\.[cm]?[jt]sx?$/.test(e.name),
    )
    .map((e) => join(dir, e.name))
    .sort();
  if (top.length === 0) {
    throw new StepError("import", "no TypeScript/JavaScript source file in the plugin directory");
  }
  return top;
}
