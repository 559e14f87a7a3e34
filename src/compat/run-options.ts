/**
 * The options of 2.7.9's `iocmng-run` that `iocmng run` accepts: `-p KEY=VALUE` parameters (value
 * tried as integer, then number, then true/false, else string, as 2.7.9 does), `--module` and
 * `--config` (a config.yaml from elsewhere, e.g. `-m iocmng.declarative --config intlk.yaml`).
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";

/** 2.7.9's module name for the declarative task (no code of one's own). */
export const DECLARATIVE_MODULE = "iocmng.declarative";

/** One `-p KEY=VALUE`, typed as 2.7.9 types it; throws with the fix on a malformed one. */
export function parseParam(arg: string): [string, unknown] {
  const eq = arg.indexOf("=");
  if (eq <= 0) throw new Error(`-p ${arg}: expected KEY=VALUE`);
  const key = arg.slice(0, eq);
  const raw = arg.slice(eq + 1);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
    throw new Error(`-p ${arg}: KEY must be a parameter name`);
  if (/^[-+]?\d+$/.test(raw) && Number.isSafeInteger(Number(raw))) return [key, Number(raw)];
  if (raw.trim() !== "" && Number.isFinite(Number(raw)) && !/^0[xob]/i.test(raw))
    return [key, Number(raw)];
  if (raw === "true" || raw === "True") return [key, true];
  if (raw === "false" || raw === "False") return [key, false];
  return [key, raw];
}

/** All `-p` options as one parameters object (a later KEY wins). */
export function parseParams(args: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(args.map(parseParam));
}

/**
 * The plugin directory for `--module`/positional and `--config`: the directory itself, or a
 * staging copy with the given config.yaml when --config names another file. `cleanup` removes a
 * staging copy. Throws with the fix when nothing usable is given.
 */
export function pluginDirFor(
  target: string | undefined,
  module: string | undefined,
  config: string | undefined,
  cwd: string,
): { dir: string; defaultName: string; cleanup(): void } {
  const source = target ?? module;
  if (source === undefined) throw new Error("missing plugin directory (or --module)");
  const declarative = source === DECLARATIVE_MODULE;
  if (declarative && config === undefined) {
    throw new Error(
      `--module ${DECLARATIVE_MODULE} needs --config PATH (the plugin's config.yaml)`,
    );
  }
  let dir: string | null = null;
  if (!declarative) {
    const p = resolve(cwd, source);
    if (existsSync(p) && statSync(p).isDirectory()) dir = p;
    else if (existsSync(p) && statSync(p).isFile()) dir = dirname(p);
    else
      throw new Error(
        `${source}: no such directory (iocmng runs a plugin directory, not a Python module)`,
      );
  }
  const defaultName = declarative ? "declarativetask" : basename(dir as string);
  if (config === undefined) return { dir: dir as string, defaultName, cleanup: () => {} };
  const cfgPath = resolve(cwd, config);
  let text: string;
  try {
    text = readFileSync(cfgPath, "utf8");
  } catch {
    throw new Error(`--config ${config}: cannot read it`);
  }
  const stage = mkdtempSync(join(tmpdir(), "iocmng-run-config-"));
  const into = join(stage, "plugin");
  if (dir !== null) {
    cpSync(dir, into, {
      recursive: true,
      filter: (src) => !["node_modules", ".git"].includes(basename(src)),
    });
  } else mkdirSync(into, { recursive: true });
  writeFileSync(join(into, "config.yaml"), text);
  return {
    dir: into,
    defaultName,
    cleanup: () => rmSync(stage, { recursive: true, force: true }),
  };
}
