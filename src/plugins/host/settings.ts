/**
 * The server config file's `sandbox:` section and `pat_env_allow:` list, and a plugin
 * config.yaml's `limits:` overrides. Errors are thrown as the caller's error type (`fail`), with
 * the field path and what was expected, like the rest of the configuration.
 */
import {
  DEFAULT_PLUGIN_UID,
  defaultSandboxConfig,
  MIN_MEMORY_MIB,
  type SandboxConfig,
  type SandboxLimits,
} from "./sandbox.ts";

type Fail = (path: string, expected: string, got: unknown) => Error;

/** File keys of a limits block and the field each sets, with its accepted range. */
const LIMIT_KEYS: Record<string, [keyof SandboxLimits, number, number]> = {
  memory_mib: ["memoryMiB", MIN_MEMORY_MIB, 1 << 20],
  open_files: ["openFiles", 64, 1 << 20],
  processes: ["processes", 16, 1 << 22],
  nice: ["nice", 0, 19],
  cpu_seconds: ["cpuSeconds", 0, 1 << 30],
};

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses a `limits:` mapping (server defaults, ceilings, or a plugin's overrides). */
export function parseLimits(v: unknown, where: string, fail: Fail): Partial<SandboxLimits> {
  if (!isObject(v)) throw fail(where, "a mapping of limits", v);
  const out: Partial<SandboxLimits> = {};
  for (const [k, raw] of Object.entries(v)) {
    const spec = LIMIT_KEYS[k];
    if (!spec) throw fail(`${where}.${k}`, `one of ${Object.keys(LIMIT_KEYS).join(", ")}`, k);
    const [field, min, max] = spec;
    if (typeof raw !== "number" || !Number.isInteger(raw) || raw < min || raw > max) {
      throw fail(`${where}.${k}`, `an integer ${min}..${max}`, raw);
    }
    out[field] = raw;
  }
  return out;
}

function parseId(v: unknown, where: string, fail: Fail): number | null {
  if (v === null) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 0xfffffffe) {
    throw fail(where, "a uid/gid 1..4294967294, or null to keep the server's", v);
  }
  return v;
}

function parseNames(v: unknown, where: string, fail: Fail): string[] {
  if (!Array.isArray(v)) throw fail(where, "a list of environment variable names", v);
  return v.map((n, i) => {
    if (typeof n !== "string" || !ENV_NAME_RE.test(n)) {
      throw fail(`${where}[${i}]`, "an environment variable name", n);
    }
    return n;
  });
}

/** Parses the `sandbox:` section over the defaults. */
export function parseSandbox(v: unknown, where: string, fail: Fail): SandboxConfig {
  const cfg = defaultSandboxConfig();
  if (v === null || v === undefined) return cfg;
  if (!isObject(v)) {
    throw fail(where, "a mapping (limits, max_limits, uid, gid, pass_env, spare)", v);
  }
  for (const [k, raw] of Object.entries(v)) {
    const path = `${where}.${k}`;
    if (k === "limits") Object.assign(cfg.limits, parseLimits(raw, path, fail));
    else if (k === "max_limits") Object.assign(cfg.maxLimits, parseLimits(raw, path, fail));
    else if (k === "uid") cfg.uid = parseId(raw, path, fail);
    else if (k === "gid") cfg.gid = parseId(raw, path, fail);
    else if (k === "pass_env") cfg.passEnv = parseNames(raw, path, fail);
    else if (k === "spare") {
      if (typeof raw !== "boolean") throw fail(path, "true or false", raw);
      cfg.spare = raw;
    } else throw fail(path, "one of limits, max_limits, uid, gid, pass_env, spare", k);
  }
  // A uid without a gid (or the reverse) would run plugins with root's group.
  if ((cfg.uid === null) !== (cfg.gid === null)) {
    throw fail(`${where}.gid`, "uid and gid both set or both null", cfg.gid);
  }
  if (cfg.uid === 0 || cfg.gid === 0) throw fail(`${where}.uid`, "not root", 0);
  return cfg;
}

/** Parses `pat_env_allow:`. */
export function parsePatEnvAllow(v: unknown, where: string, fail: Fail): string[] {
  if (v === null || v === undefined) return [];
  return parseNames(v, where, fail);
}

/** The message of a refused `pat_env` (never echoes the variable's value, nor its name). */
export const PAT_ENV_REFUSED =
  "pat_env names a variable that is not in pat_env_allow of the server configuration";

/** True when `name` may be named by a `pat_env`. */
export function patEnvAllowed(allow: readonly string[] | undefined, name: string): boolean {
  return (allow ?? []).includes(name);
}

export { DEFAULT_PLUGIN_UID };
