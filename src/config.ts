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
import type { DeclaredPlugin } from "./common/add-request.ts";
import { isPlainObject } from "./common/object.ts";
import { show, suggest } from "./common/text.ts";
import { parseYamlText } from "./common/yaml.ts";
import { parsePluginLists } from "./config-declared.ts";
import { ConfigError } from "./config-error.ts";
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
  /** The complete PV prefix of every plugin (`iocmng run --prefix`, as 2.7.9's iocmng-run). */
  exactPrefix?: string;
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
  /** Access security file (IOCMNG_ACF or `access_security_file`); null/absent = access security off. */
  accessSecurityFile?: string | null;
  /** HAG matching: client host names (default) or peer addresses (EPICS_CAS_USE_HOST_NAMES=NO). */
  accessHostMode?: "names" | "addresses";
  /** Access security groups plugins may put their PVs in (`access_groups`); null/absent = any. */
  accessGroups?: string[] | null;
}

export { ConfigError } from "./config-error.ts";

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
  "access_security_file",
  "access_groups",
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
  accessSecurityFile?: string;
  accessGroups?: string[];
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
  const acf = str("access_security_file");
  if (acf !== undefined) out.accessSecurityFile = checkDir(acf, `${file}: access_security_file`);
  const groups = doc.access_groups;
  if (groups !== undefined && groups !== null) {
    const ok = (g: unknown) => typeof g === "string" && /^[\x21-\x7e]{1,128}$/.test(g);
    if (!Array.isArray(groups) || !groups.every(ok)) {
      throw at("access_groups", "a list of access security group names", groups);
    }
    out.accessGroups = groups as string[];
  }
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
  file.accessSecurityFile = rel(file.accessSecurityFile);
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

  const accessSecurityFile = envStr(env, "IOCMNG_ACF") ?? file.accessSecurityFile ?? null;
  if (accessSecurityFile !== null) checkDir(accessSecurityFile, "IOCMNG_ACF");
  const accessHostMode = setting(
    env,
    "EPICS_CAS_USE_HOST_NAMES",
    parseHostMode,
    undefined,
    "names",
  );

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
    accessSecurityFile,
    accessHostMode,
    accessGroups: file.accessGroups ?? null,
  };
}

// EPICS_CAS_USE_HOST_NAMES=NO is rsrv's asCheckClientIP=1: HAGs match the client's address.
function parseHostMode(raw: string, what: string): "names" | "addresses" {
  return parseBool(raw, what) ? "names" : "addresses";
}

/** Prefix used when neither `prefix` nor `beamline` is configured. */
export const FALLBACK_PREFIX = "IOCMNG";

/**
 * The PV prefix of a plugin (without the trailing ':'): `<prefix>:<NAME>` when `prefix` is set
 * (just `<NAME>` for an empty prefix), else `BEAMLINE:NAMESPACE:NAME` upper-cased (namespace
 * omitted when absent), else `IOCMNG:<NAME>`.
 */
export function pvPrefixFor(cfg: ServerConfig, pluginName: string, segment?: string): string {
  // config.yaml `prefix` (2.7.9) replaces the upper-cased name, verbatim.
  const name = segment ?? pluginName.toUpperCase();
  if (cfg.exactPrefix !== undefined) return cfg.exactPrefix;
  if (cfg.prefix !== null) return cfg.prefix === "" ? name : `${cfg.prefix}:${name}`;
  if (cfg.beamline !== null) {
    const b = cfg.beamline.toUpperCase();
    const n = cfg.namespace?.toUpperCase() ?? "";
    // As 2.7.9: a namespace equal to the beamline is not repeated (SPARC:X, not SPARC:SPARC:X).
    const parts = [b, n === b ? "" : n].filter((p) => p !== "");
    return [...parts, name].join(":");
  }
  return `${FALLBACK_PREFIX}:${name}`;
}
