/**
 * Server configuration: environment variables, the optional IOCMNG_CONFIG file (server settings and
 * declarative plugins) and the optional IOCMNG_BEAMLINE_CONFIG values file, merged into one typed,
 * validated `ServerConfig`. Every error names its source (env var or file), the field path and what
 * was expected, because a typo in a beamline's configuration is expensive to find at 3 a.m.
 *
 * Precedence: environment variable > IOCMNG_CONFIG file > built-in default.
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve as resolvePath } from "node:path";
import {
  addRequestProblem,
  DECLARED_PLUGIN_KEYS,
  type DeclaredPlugin,
} from "./common/add-request.ts";
import { isPlainObject } from "./common/object.ts";
import { show, suggest } from "./common/text.ts";
import { parseYamlText } from "./common/yaml.ts";
import type { SandboxConfig } from "./plugins/host/sandbox.ts";
import { parsePatEnvAllow, parseSandbox } from "./plugins/host/settings.ts";

/** A plugin listed in the IOCMNG_CONFIG file, loaded at boot. The token is only named (`pat_env`). */
export type { DeclaredPlugin } from "./common/add-request.ts";

/** The whole validated server configuration. */
export interface ServerConfig {
  host: string;
  port: number;
  pluginsDir: string;
  stateDir: string;
  logLevel: string;
  /** PV prefix for every plugin (`<prefix>:<NAME>`), from the file or IOCMNG_PREFIX. */
  prefix: string | null;
  beamline: string | null;
  namespace: string | null;
  /** The whole parsed values file (the devices layer reads `epicsConfiguration.iocs`). */
  beamlineValues: Record<string, unknown> | null;
  apiToken: string | null;
  disableDevices: boolean;
  plugins: DeclaredPlugin[];
  configFile: string | null;
  /** Path of the values file, when one was given (optional so hand-built configs stay valid). */
  beamlineConfigFile?: string | null;
  /** Plugin process sandbox (limits, uid); defaults from src/plugins/host/sandbox.ts when absent. */
  sandbox?: SandboxConfig;
  /** Variables a `pat_env` may name (file `pat_env_allow:`); absent or empty: none. */
  patEnvAllow?: string[];
}

/** Invalid configuration: the message names the env var or file, the field path and the expectation. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Environment variables read by `loadConfig`, with their defaults (documented in docs/configuration.md). */
export const ENV_DEFAULTS = {
  IOCMNG_HOST: "0.0.0.0",
  IOCMNG_PORT: "8080",
  IOCMNG_PLUGINS_DIR: "./data/plugins",
  IOCMNG_STATE_DIR: "./data/state",
  IOCMNG_LOG_LEVEL: "info",
  IOCMNG_DISABLE_DEVICES: "true",
} as const;

/** Log levels pino accepts. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** Characters EPICS allows in record names (no '.': it separates the field name); for prefixes. */
export const PV_FRAGMENT_RE = /^[A-Za-z0-9_\-+:[\]<>;]+$/;

/** Largest IOCMNG_CONFIG file accepted. */
export const MAX_SERVER_CONFIG_BYTES = 1 << 20;
/** Largest values file accepted (beamline values files are big but not this big). */
export const MAX_VALUES_FILE_BYTES = 16 << 20;

// ---------------------------------------------------------------------------------------------
// Environment variables.

type Env = Record<string, string | undefined>;

function envStr(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === "" ? undefined : t;
}

/** The variable `name` (checked) when set, else the file's value, else `fallback`. */
function setting<T>(
  env: Env,
  name: string,
  check: (raw: string, what: string) => T,
  fromFile: T | undefined,
  fallback: T,
): T {
  const raw = envStr(env, name);
  return raw !== undefined ? check(raw, name) : (fromFile ?? fallback);
}

/** Parses a boolean env/file value: true/false, 1/0, yes/no, on/off (any case). */
export function parseBool(raw: string | boolean, what: string): boolean {
  if (typeof raw === "boolean") return raw;
  const t = raw.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(t)) return true;
  if (["0", "false", "no", "off"].includes(t)) return false;
  throw new ConfigError(
    `${what} must be a boolean (true/false, 1/0, yes/no, on/off), got '${raw}'`,
  );
}

function parsePort(raw: string | number, what: string): number {
  const s = String(raw).trim();
  const n = /^\d{1,5}$/.test(s) ? Number(s) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new ConfigError(`${what} must be an integer 1..65535, got '${String(raw)}'`);
  }
  return n;
}

function checkHost(raw: string, what: string): string {
  // Hostnames, IPv4 and IPv6 literals; no spaces, schemes or ports.
  if (!/^[A-Za-z0-9.:_%-]{1,253}$/.test(raw) || raw.includes("://")) {
    throw new ConfigError(
      `${what} must be a host name or IP address (e.g. 0.0.0.0, 127.0.0.1, ::), got '${raw}'`,
    );
  }
  return raw;
}

function checkLogLevel(raw: string, what: string): string {
  const t = raw.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(t)) {
    throw new ConfigError(`${what} must be one of ${LOG_LEVELS.join(", ")}, got '${raw}'`);
  }
  return t;
}

function checkPrefix(raw: string, what: string): string {
  if (raw === "") return raw;
  if (raw.length > 128 || !PV_FRAGMENT_RE.test(raw) || raw.endsWith(":")) {
    throw new ConfigError(
      `${what} must be a PV name fragment (letters, digits and _ - + : [ ] < > ;, at most 128 characters, not ending in ':'), got ${show(raw)}`,
    );
  }
  return raw;
}

function checkDir(raw: string, what: string): string {
  if (raw.includes("\0")) throw new ConfigError(`${what} must be a path, got a NUL byte`);
  return raw;
}

// ---------------------------------------------------------------------------------------------
// The IOCMNG_CONFIG file.

const FILE_KEYS = [
  "prefix",
  "host",
  "port",
  "plugins_dir",
  "state_dir",
  "log_level",
  "beamline_config",
  "disable_devices",
  "plugins",
  "tasks",
  "jobs",
  "sandbox",
  "pat_env_allow",
] as const;

/** Settings read from an IOCMNG_CONFIG file (paths as written; loadConfig resolves them). */
export interface FileSettings {
  prefix?: string;
  host?: string;
  port?: number;
  pluginsDir?: string;
  stateDir?: string;
  logLevel?: string;
  beamlineConfig?: string;
  disableDevices?: boolean;
  plugins: DeclaredPlugin[];
  sandbox?: SandboxConfig;
  patEnvAllow?: string[];
}

function readTextFile(file: string, what: string, maxBytes: number): string {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new ConfigError(`${what}: '${file}' is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`${what}: cannot read '${file}': ${(e as NodeJS.ErrnoException).code}`);
  }
  if (size > maxBytes) {
    throw new ConfigError(`${what}: '${file}' is too large (${size} bytes > ${maxBytes})`);
  }
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`${what}: cannot read '${file}': ${(e as NodeJS.ErrnoException).code}`);
  }
}

/** Parses the text of an IOCMNG_CONFIG file; `file` names it in errors. */
export function parseServerConfigFile(text: string, file: string): FileSettings {
  const r = parseYamlText(text, { maxBytes: MAX_SERVER_CONFIG_BYTES });
  if (!r.ok) throw new ConfigError(`${file}: ${r.path ? `${r.path}: ` : ""}${r.message}`);
  const doc = r.value;
  if (doc === null || doc === undefined) return { plugins: [] };
  if (!isPlainObject(doc)) {
    throw new ConfigError(
      `${file}: expected a mapping of settings at the top level, got ${show(doc)}`,
    );
  }
  const at = (path: string, expected: string, got: unknown): ConfigError =>
    new ConfigError(`${file}: ${path}: expected ${expected}, got ${show(got)}`);
  for (const key of Object.keys(doc)) {
    if ((FILE_KEYS as readonly string[]).includes(key)) continue;
    if (key === "api_token" || key === "apiToken" || key === "token") {
      throw new ConfigError(
        `${file}: ${key}: secrets are not read from the config file; set the IOCMNG_API_TOKEN environment variable (e.g. from a Kubernetes Secret)`,
      );
    }
    const hint = suggest(key, FILE_KEYS);
    throw new ConfigError(
      `${file}: ${key}: unknown setting${hint ? ` (did you mean '${hint}'?)` : ""}; expected one of ${FILE_KEYS.join(", ")}`,
    );
  }
  const out: FileSettings = { plugins: [] };
  const str = (key: string): string | undefined => {
    const v = doc[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw at(key, "a string", v);
    return v;
  };
  const prefix = doc.prefix;
  if (prefix !== undefined && prefix !== null) {
    if (typeof prefix !== "string") throw at("prefix", "a string", prefix);
    out.prefix = checkPrefix(prefix, `${file}: prefix`);
  }
  const host = str("host");
  if (host !== undefined) out.host = checkHost(host, `${file}: host`);
  if (doc.port !== undefined && doc.port !== null) {
    if (typeof doc.port !== "number" && typeof doc.port !== "string") {
      throw at("port", "an integer 1..65535", doc.port);
    }
    out.port = parsePort(doc.port, `${file}: port`);
  }
  const pd = str("plugins_dir");
  if (pd !== undefined) out.pluginsDir = checkDir(pd, `${file}: plugins_dir`);
  const sd = str("state_dir");
  if (sd !== undefined) out.stateDir = checkDir(sd, `${file}: state_dir`);
  const ll = str("log_level");
  if (ll !== undefined) out.logLevel = checkLogLevel(ll, `${file}: log_level`);
  const bc = str("beamline_config");
  if (bc !== undefined) out.beamlineConfig = checkDir(bc, `${file}: beamline_config`);
  const dd = doc.disable_devices;
  if (dd !== undefined && dd !== null) {
    if (typeof dd !== "boolean" && typeof dd !== "string") {
      throw at("disable_devices", "a boolean", dd);
    }
    out.disableDevices = parseBool(dd, `${file}: disable_devices`);
  }

  if (doc.sandbox !== undefined) out.sandbox = parseSandbox(doc.sandbox, "sandbox", at);
  if (doc.pat_env_allow !== undefined) {
    out.patEnvAllow = parsePatEnvAllow(doc.pat_env_allow, "pat_env_allow", at);
  }

  out.plugins = parsePluginLists(doc, file);
  return out;
}

/** The `plugins`, `tasks` and `jobs` lists of a config file; names unique across all three. */
function parsePluginLists(doc: Record<string, unknown>, file: string): DeclaredPlugin[] {
  const lists: [string, "task" | "job" | null][] = [
    ["plugins", null],
    ["tasks", "task"],
    ["jobs", "job"],
  ];
  const out: DeclaredPlugin[] = [];
  const seen = new Map<string, string>();
  for (const [key, impliedKind] of lists) {
    const list = doc[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      throw new ConfigError(`${file}: ${key}: expected a list of plugins, got ${show(list)}`);
    }
    list.forEach((item, i) => {
      const p = parseDeclaredPlugin(item, `${file}: ${key}[${i}]`, impliedKind);
      const prev = seen.get(p.name);
      if (prev !== undefined) {
        throw new ConfigError(
          `${file}: ${key}[${i}].name: plugin name '${p.name}' already declared at ${prev}; names must be unique`,
        );
      }
      seen.set(p.name, `${key}[${i}]`);
      out.push(p);
    });
  }
  return out;
}

/**
 * One entry of a plugin list: the add-request schema's fields (src/common/add-request.ts, the
 * same checks as a REST add), plus what only a file needs: secrets refused with a pointer to
 * `pat_env`, `kind` implied by the list, YAML nulls as absent, and `path` checked at boot.
 */
function parseDeclaredPlugin(
  item: unknown,
  where: string,
  impliedKind: "task" | "job" | null,
): DeclaredPlugin {
  const at = (path: string, expected: string, got: unknown): ConfigError =>
    new ConfigError(`${where}${path ? `.${path}` : ""}: expected ${expected}, got ${show(got)}`);
  if (!isPlainObject(item)) throw at("", "a mapping describing a plugin", item);
  const keys: readonly string[] = DECLARED_PLUGIN_KEYS;
  const entry: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(item)) {
    if (!keys.includes(key)) {
      if (key === "pat" || key === "token" || key === "password") {
        throw new ConfigError(
          `${where}.${key}: a token must not be written in the config file; put it in an environment variable (e.g. from a Kubernetes Secret) and name it with 'pat_env: GIT_TOKEN'`,
        );
      }
      const hint = suggest(key, keys);
      throw new ConfigError(
        `${where}.${key}: unknown key${hint ? ` (did you mean '${hint}'?)` : ""}; expected one of ${keys.join(", ")}`,
      );
    }
    if (v !== null && v !== undefined) entry[key] = v;
  }
  if (entry.kind === undefined && impliedKind !== null) entry.kind = impliedKind;
  else if (impliedKind !== null && entry.kind !== impliedKind && typeof entry.kind === "string") {
    throw at("kind", `'${impliedKind}' (or no kind) in this list`, entry.kind);
  }
  const gitUrl = entry.git_url;
  // user:password@ anywhere, or any user@ on https (a token passed as user name), is a secret.
  if (
    typeof gitUrl === "string" &&
    (/^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(gitUrl) || /^https?:\/\/[^/@]+@/i.test(gitUrl))
  ) {
    throw new ConfigError(
      `${where}.git_url: credentials must not be written in the URL; use 'pat_env' naming an environment variable`,
    );
  }
  if (entry.path === "") throw at("path", "a non-empty string", entry.path);
  const problem = addRequestProblem(entry);
  if (problem !== null) {
    if (problem.expected !== undefined) throw at(problem.field, problem.expected, problem.got);
    throw new ConfigError(`${where}.${problem.field}: ${problem.message}`);
  }
  const p = entry as DeclaredPlugin;
  if (p.path !== undefined) {
    const segs = p.path.split(/[\\/]+/);
    if (isAbsolute(p.path) || segs.includes("..") || p.path.includes("\0")) {
      throw new ConfigError(
        `${where}.path: expected a relative path inside the repository (no '..', not absolute), got ${show(p.path)}`,
      );
    }
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// The values file (IOCMNG_BEAMLINE_CONFIG).

/** Parses a beamline values file: `beamline` and `namespace` keys plus the whole document. */
export function parseValuesFile(
  text: string,
  file: string,
): { beamline: string | null; namespace: string | null; values: Record<string, unknown> } {
  const r = parseYamlText(text, { maxBytes: MAX_VALUES_FILE_BYTES, maxDepth: 128 });
  if (!r.ok) throw new ConfigError(`${file}: ${r.path ? `${r.path}: ` : ""}${r.message}`);
  const doc = r.value ?? {};
  if (!isPlainObject(doc)) {
    throw new ConfigError(`${file}: expected a mapping at the top level, got ${show(doc)}`);
  }
  const frag = (key: "beamline" | "namespace"): string | null => {
    const v = doc[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== "string" && typeof v !== "number") {
      throw new ConfigError(`${file}: ${key}: expected a string, got ${show(v)}`);
    }
    const s = String(v);
    if (s === "" || s.length > 64 || !PV_FRAGMENT_RE.test(s) || s.includes(":")) {
      throw new ConfigError(
        `${file}: ${key}: expected a PV name fragment (letters, digits and _ - + [ ] < > ;, no ':', at most 64 characters), got ${show(v)}`,
      );
    }
    return s;
  };
  return { beamline: frag("beamline"), namespace: frag("namespace"), values: doc };
}

// ---------------------------------------------------------------------------------------------

/** Reads the IOCMNG_CONFIG file; its relative paths become relative to the file's directory. */
function readConfigFile(configFile: string): FileSettings {
  const text = readTextFile(configFile, "IOCMNG_CONFIG", MAX_SERVER_CONFIG_BYTES);
  const file = parseServerConfigFile(text, configFile);
  // Like docker compose: a config means the same whatever the working directory of the server.
  const base = dirname(resolvePath(configFile));
  const rel = (p: string | undefined): string | undefined =>
    p === undefined || isAbsolute(p) ? p : resolvePath(base, p);
  file.pluginsDir = rel(file.pluginsDir);
  file.stateDir = rel(file.stateDir);
  file.beamlineConfig = rel(file.beamlineConfig);
  return file;
}

/** IOCMNG_API_TOKEN: null when unset or blank; one word of at most 4096 characters. */
function apiTokenFrom(env: Env): string | null {
  const raw = env.IOCMNG_API_TOKEN;
  if (raw === undefined || raw.trim() === "") return null;
  const token = raw.trim();
  if (/\s/.test(token) || token.length > 4096) {
    throw new ConfigError(
      "IOCMNG_API_TOKEN must be a single word without whitespace, at most 4096 characters",
    );
  }
  return token;
}

/**
 * Builds the server configuration from `env` (default `process.env`) and the files it names.
 * Throws ConfigError with a precise message on any invalid value; never partially applies.
 */
export function loadConfig(env: Env = process.env): ServerConfig {
  const configFile = envStr(env, "IOCMNG_CONFIG") ?? null;
  const file: FileSettings = configFile === null ? { plugins: [] } : readConfigFile(configFile);

  const host = setting(env, "IOCMNG_HOST", checkHost, file.host, ENV_DEFAULTS.IOCMNG_HOST);
  const port = setting(env, "IOCMNG_PORT", parsePort, file.port, Number(ENV_DEFAULTS.IOCMNG_PORT));
  const pluginsDir = checkDir(
    envStr(env, "IOCMNG_PLUGINS_DIR") ?? file.pluginsDir ?? ENV_DEFAULTS.IOCMNG_PLUGINS_DIR,
    "IOCMNG_PLUGINS_DIR",
  );
  const stateDir = checkDir(
    envStr(env, "IOCMNG_STATE_DIR") ?? file.stateDir ?? ENV_DEFAULTS.IOCMNG_STATE_DIR,
    "IOCMNG_STATE_DIR",
  );
  const logLevel = setting(
    env,
    "IOCMNG_LOG_LEVEL",
    checkLogLevel,
    file.logLevel,
    ENV_DEFAULTS.IOCMNG_LOG_LEVEL,
  );
  const prefix = setting<string | null>(env, "IOCMNG_PREFIX", checkPrefix, file.prefix, null);

  // IOCMNG_DISABLE_DEVICES is the new name; IOCMNG_DISABLE_OPHYD (the seed's) still works.
  let disableDevices = file.disableDevices ?? true;
  const ophyd = envStr(env, "IOCMNG_DISABLE_OPHYD");
  const devices = envStr(env, "IOCMNG_DISABLE_DEVICES");
  if (ophyd !== undefined) disableDevices = parseBool(ophyd, "IOCMNG_DISABLE_OPHYD");
  if (devices !== undefined) disableDevices = parseBool(devices, "IOCMNG_DISABLE_DEVICES");

  const apiToken = apiTokenFrom(env);

  let beamlineConfigFile = envStr(env, "IOCMNG_BEAMLINE_CONFIG") ?? null;
  let valuesLabel = "IOCMNG_BEAMLINE_CONFIG";
  if (beamlineConfigFile === null && file.beamlineConfig !== undefined && configFile !== null) {
    valuesLabel = `${configFile}: beamline_config`;
    // Relative paths in the config file are relative to that file, like most tools do.
    beamlineConfigFile = file.beamlineConfig;
  }
  const values =
    beamlineConfigFile === null
      ? null
      : parseValuesFile(
          readTextFile(beamlineConfigFile, valuesLabel, MAX_VALUES_FILE_BYTES),
          beamlineConfigFile,
        );

  return {
    host,
    port,
    pluginsDir,
    stateDir,
    logLevel,
    prefix,
    beamline: values?.beamline ?? null,
    namespace: values?.namespace ?? null,
    beamlineValues: values?.values ?? null,
    apiToken,
    disableDevices,
    plugins: file.plugins,
    configFile,
    beamlineConfigFile,
    ...(file.sandbox ? { sandbox: file.sandbox } : {}),
    ...(file.patEnvAllow ? { patEnvAllow: file.patEnvAllow } : {}),
  };
}

/** Prefix used when neither `prefix` nor `beamline` is configured. */
export const FALLBACK_PREFIX = "IOCMNG";

/**
 * The PV prefix of a plugin (without the trailing ':'): `<prefix>:<NAME>` when `prefix` is set
 * (just `<NAME>` for an empty prefix), else `BEAMLINE:NAMESPACE:NAME` upper-cased (namespace
 * omitted when absent), else `IOCMNG:<NAME>`.
 */
export function pvPrefixFor(cfg: ServerConfig, pluginName: string): string {
  const name = pluginName.toUpperCase();
  if (cfg.prefix !== null) return cfg.prefix === "" ? name : `${cfg.prefix}:${name}`;
  if (cfg.beamline !== null) {
    const parts = [cfg.beamline, cfg.namespace, pluginName].filter(
      (p): p is string => p !== null && p !== "",
    );
    return parts.join(":").toUpperCase();
  }
  return `${FALLBACK_PREFIX}:${name}`;
}
