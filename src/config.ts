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
import { LineCounter, parseDocument } from "yaml";
import { checkBranch, checkGitUrl } from "./plugins/git.ts";

/** A plugin listed in the IOCMNG_CONFIG file, loaded at boot. The token is only named (`pat_env`). */
export interface DeclaredPlugin {
  name: string;
  kind: "task" | "job";
  git_url: string;
  branch?: string;
  path?: string;
  parameters?: Record<string, unknown>;
  auto_start?: boolean;
  /** Name of the environment variable that holds the git token (e.g. from a Kubernetes Secret). */
  pat_env?: string;
}

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

/** Plugin names, as the seed: 1..128 of letters, digits, `_` and `-`. */
export const PLUGIN_NAME_RE = /^[A-Za-z0-9_-]{1,128}$/;

/** Characters EPICS allows in record names (no '.': it separates the field name); for prefixes. */
export const PV_FRAGMENT_RE = /^[A-Za-z0-9_\-+:[\]<>;]+$/;

/** Environment variable names (for `pat_env`). */
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** Largest IOCMNG_CONFIG file accepted. */
export const MAX_SERVER_CONFIG_BYTES = 1 << 20;
/** Largest values file accepted (beamline values files are big but not this big). */
export const MAX_VALUES_FILE_BYTES = 16 << 20;
/** Deepest nesting accepted in any YAML document we read. */
export const MAX_YAML_DEPTH = 64;
/**
 * Alias budget handed to the `yaml` package (uses of an anchor × nodes behind it): large enough for
 * a PV template reused by thousands of PVs, small enough to stop "billion laughs" documents.
 */
export const MAX_YAML_ALIASES = 10_000;

// ---------------------------------------------------------------------------------------------
// YAML reading shared with the plugin config.yaml parser.

/** A failure of `parseYamlText`: `path` is the dotted field path ("" for the document). */
export interface YamlFailure {
  ok: false;
  path: string;
  expected: string;
  message: string;
}

/** Parses YAML text defensively: size cap, syntax errors with line:col, alias-bomb and depth caps. */
export function parseYamlText(
  text: string,
  opts: { maxBytes: number; maxDepth?: number; maxAliasCount?: number },
): { ok: true; value: unknown } | YamlFailure {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > opts.maxBytes) {
    return {
      ok: false,
      path: "",
      expected: `a file of at most ${opts.maxBytes} bytes`,
      message: `file too large (${bytes} bytes > ${opts.maxBytes})`,
    };
  }
  const maxDepth = opts.maxDepth ?? MAX_YAML_DEPTH;
  // The parser recurses per nesting level: refuse absurd bracket/indent depth before parsing so a
  // hostile file cannot overflow the stack.
  const rough = roughNestingDepth(text);
  if (rough > maxDepth * 4 + 16) {
    return {
      ok: false,
      path: "",
      expected: `nesting depth at most ${maxDepth}`,
      message: `nesting too deep (more than ${maxDepth} levels)`,
    };
  }
  const lineCounter = new LineCounter();
  let value: unknown;
  try {
    const doc = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: true,
      strict: true,
    });
    const err = doc.errors[0];
    if (err) {
      const pos = lineCounter.linePos(err.pos[0]);
      const first = err.message.split("\n")[0] ?? err.message;
      return {
        ok: false,
        path: "",
        expected: "valid YAML",
        message: `YAML syntax error at line ${pos.line}, column ${pos.col}: ${first}`,
      };
    }
    value = doc.toJS({ maxAliasCount: opts.maxAliasCount ?? MAX_YAML_ALIASES });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/alias/i.test(msg)) {
      return {
        ok: false,
        path: "",
        expected: "a document without excessive alias expansion",
        message: `YAML refused: ${msg.split("\n")[0]}`,
      };
    }
    if (e instanceof RangeError) {
      return {
        ok: false,
        path: "",
        expected: `nesting depth at most ${maxDepth}`,
        message: "nesting too deep",
      };
    }
    return { ok: false, path: "", expected: "valid YAML", message: `YAML error: ${msg}` };
  }
  const depthPath = findTooDeep(value, maxDepth);
  if (depthPath !== null) {
    return {
      ok: false,
      path: depthPath,
      expected: `nesting depth at most ${maxDepth}`,
      message: `nesting too deep (more than ${maxDepth} levels)`,
    };
  }
  return { ok: true, value };
}

// Characters after which a quote opens a quoted scalar: space, tab, newline, [ { , :
const QUOTE_OPENERS = new Set([0x20, 0x09, 0x0a, 0x5b, 0x7b, 0x2c, 0x3a]);

// Rough upper bound of flow-collection nesting and indentation levels, computed without parsing.
// Brackets inside quoted scalars and comments are skipped so ordinary strings do not count.
function roughNestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let quote = 0; // 0, or the char code of the open quote
  let prev = 0x0a;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote !== 0) {
      if (c === 0x5c && quote === 0x22)
        i++; // backslash escape in "…"
      else if (c === quote || c === 0x0a) quote = 0;
    } else if (c === 0x23 && (prev === 0x20 || prev === 0x0a || prev === 0x09)) {
      while (i < text.length && text.charCodeAt(i) !== 0x0a) i++; // comment
    } else if ((c === 0x22 || c === 0x27) && QUOTE_OPENERS.has(prev)) {
      // Only where YAML starts a quoted scalar: `it's` in a plain scalar is not a quote.
      quote = c;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) max = depth;
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
    prev = text.charCodeAt(i);
  }
  let maxIndent = 0;
  for (const line of text.split("\n")) {
    let n = 0;
    while (n < line.length && (line[n] === " " || line[n] === "-" || line[n] === "?")) n++;
    if (n > maxIndent) maxIndent = n;
  }
  return Math.max(max, Math.floor(maxIndent / 2));
}

function findTooDeep(value: unknown, maxDepth: number): string | null {
  const walk = (v: unknown, depth: number, path: string): string | null => {
    if (v === null || typeof v !== "object") return null;
    if (depth > maxDepth) return path;
    const entries: [string, unknown][] = Array.isArray(v)
      ? v.map((x, i) => [`[${i}]`, x])
      : Object.entries(v as Record<string, unknown>).map(([k, x]) => [`.${k}`, x]);
    for (const [k, x] of entries) {
      const r = walk(x, depth + 1, path + k);
      if (r !== null) return r;
    }
    return null;
  };
  const r = walk(value, 0, "");
  return r === null ? null : r.replace(/^\./, "");
}

/** Closest candidate by edit distance, for "did you mean" hints; null when nothing is close. */
export function suggest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== null && bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Number.POSITIVE_INFINITY;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? Number.POSITIVE_INFINITY;
}

/** Short, safe rendering of a user value for an error message. */
export function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (typeof v === "string") return `'${v.length > 60 ? `${v.slice(0, 60)}…` : v}'`;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return "a list";
  return `a ${typeof v === "object" ? "mapping" : typeof v}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------
// Environment variables.

type Env = Record<string, string | undefined>;

function envStr(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === "" ? undefined : t;
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
] as const;

const PLUGIN_KEYS = [
  "name",
  "kind",
  "git_url",
  "branch",
  "path",
  "parameters",
  "auto_start",
  "pat_env",
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

  const lists: [string, "task" | "job" | null][] = [
    ["plugins", null],
    ["tasks", "task"],
    ["jobs", "job"],
  ];
  const seen = new Map<string, string>();
  for (const [key, impliedKind] of lists) {
    const list = doc[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw at(key, "a list of plugins", list);
    list.forEach((item, i) => {
      const p = parseDeclaredPlugin(item, `${file}: ${key}[${i}]`, impliedKind);
      const prev = seen.get(p.name);
      if (prev !== undefined) {
        throw new ConfigError(
          `${file}: ${key}[${i}].name: plugin name '${p.name}' already declared at ${prev}; names must be unique`,
        );
      }
      seen.set(p.name, `${key}[${i}]`);
      out.plugins.push(p);
    });
  }
  return out;
}

function parseDeclaredPlugin(
  item: unknown,
  where: string,
  impliedKind: "task" | "job" | null,
): DeclaredPlugin {
  const at = (path: string, expected: string, got: unknown): ConfigError =>
    new ConfigError(`${where}${path ? `.${path}` : ""}: expected ${expected}, got ${show(got)}`);
  if (!isPlainObject(item)) throw at("", "a mapping describing a plugin", item);
  for (const key of Object.keys(item)) {
    if ((PLUGIN_KEYS as readonly string[]).includes(key)) continue;
    if (key === "pat" || key === "token" || key === "password") {
      throw new ConfigError(
        `${where}.${key}: a token must not be written in the config file; put it in an environment variable (e.g. from a Kubernetes Secret) and name it with 'pat_env: GIT_TOKEN'`,
      );
    }
    const hint = suggest(key, PLUGIN_KEYS);
    throw new ConfigError(
      `${where}.${key}: unknown key${hint ? ` (did you mean '${hint}'?)` : ""}; expected one of ${PLUGIN_KEYS.join(", ")}`,
    );
  }
  const name = item.name;
  if (typeof name !== "string" || !PLUGIN_NAME_RE.test(name)) {
    throw at("name", "a plugin name of 1..128 letters, digits, '_' or '-'", name);
  }
  let kind: "task" | "job";
  if (item.kind === undefined || item.kind === null) {
    if (impliedKind === null) throw at("kind", "'task' or 'job'", item.kind);
    kind = impliedKind;
  } else {
    if (item.kind !== "task" && item.kind !== "job") throw at("kind", "'task' or 'job'", item.kind);
    if (impliedKind !== null && item.kind !== impliedKind) {
      throw at("kind", `'${impliedKind}' (or no kind) in this list`, item.kind);
    }
    kind = item.kind;
  }
  const gitUrl = item.git_url;
  if (typeof gitUrl !== "string" || gitUrl.trim() === "") {
    throw at("git_url", "a git URL (https://, ssh://, user@host:path or file://)", gitUrl);
  }
  // user:password@ anywhere, or any user@ on https (a token passed as user name), is a secret.
  if (
    /^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(gitUrl) ||
    /^https?:\/\/[^/@]+@/i.test(gitUrl)
  ) {
    throw new ConfigError(
      `${where}.git_url: credentials must not be written in the URL; use 'pat_env' naming an environment variable`,
    );
  }
  // Same rules as REST adds (src/plugins/git.ts), so a bad entry fails at boot with its location.
  const urlProblem = checkGitUrl(gitUrl);
  if (urlProblem !== null) throw new ConfigError(`${where}.git_url: ${urlProblem}`);
  const p: DeclaredPlugin = { name, kind, git_url: gitUrl };
  for (const key of ["branch", "path"] as const) {
    const v = item[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string" || v === "") throw at(key, "a non-empty string", v);
    p[key] = v;
  }
  const branchProblem = checkBranch(p.branch);
  if (branchProblem !== null) throw new ConfigError(`${where}.branch: ${branchProblem}`);
  if (p.path !== undefined) {
    const segs = p.path.split(/[\\/]+/);
    if (isAbsolute(p.path) || segs.includes("..") || p.path.includes("\0")) {
      throw new ConfigError(
        `${where}.path: expected a relative path inside the repository (no '..', not absolute), got ${show(p.path)}`,
      );
    }
  }
  if (item.parameters !== undefined && item.parameters !== null) {
    if (!isPlainObject(item.parameters)) throw at("parameters", "a mapping", item.parameters);
    p.parameters = item.parameters;
  }
  if (item.auto_start !== undefined && item.auto_start !== null) {
    if (typeof item.auto_start !== "boolean")
      throw at("auto_start", "true or false", item.auto_start);
    p.auto_start = item.auto_start;
  }
  if (item.pat_env !== undefined && item.pat_env !== null) {
    if (typeof item.pat_env !== "string" || !ENV_NAME_RE.test(item.pat_env)) {
      throw at("pat_env", "the name of an environment variable (e.g. GIT_TOKEN)", item.pat_env);
    }
    p.pat_env = item.pat_env;
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

/**
 * Builds the server configuration from `env` (default `process.env`) and the files it names.
 * Throws ConfigError with a precise message on any invalid value; never partially applies.
 */
export function loadConfig(env: Env = process.env): ServerConfig {
  const configFile = envStr(env, "IOCMNG_CONFIG") ?? null;
  let file: FileSettings = { plugins: [] };
  if (configFile !== null) {
    const text = readTextFile(configFile, "IOCMNG_CONFIG", MAX_SERVER_CONFIG_BYTES);
    file = parseServerConfigFile(text, configFile);
    // Relative paths in the file are relative to the file's directory (like docker compose), so a
    // config means the same whatever the working directory of the server.
    const base = dirname(resolvePath(configFile));
    const rel = (p: string | undefined): string | undefined =>
      p === undefined || isAbsolute(p) ? p : resolvePath(base, p);
    file.pluginsDir = rel(file.pluginsDir);
    file.stateDir = rel(file.stateDir);
    file.beamlineConfig = rel(file.beamlineConfig);
  }

  const hostEnv = envStr(env, "IOCMNG_HOST");
  const host =
    hostEnv !== undefined
      ? checkHost(hostEnv, "IOCMNG_HOST")
      : (file.host ?? ENV_DEFAULTS.IOCMNG_HOST);
  const portEnv = envStr(env, "IOCMNG_PORT");
  const port =
    portEnv !== undefined
      ? parsePort(portEnv, "IOCMNG_PORT")
      : (file.port ?? Number(ENV_DEFAULTS.IOCMNG_PORT));
  const pluginsDir = checkDir(
    envStr(env, "IOCMNG_PLUGINS_DIR") ?? file.pluginsDir ?? ENV_DEFAULTS.IOCMNG_PLUGINS_DIR,
    "IOCMNG_PLUGINS_DIR",
  );
  const stateDir = checkDir(
    envStr(env, "IOCMNG_STATE_DIR") ?? file.stateDir ?? ENV_DEFAULTS.IOCMNG_STATE_DIR,
    "IOCMNG_STATE_DIR",
  );
  const llEnv = envStr(env, "IOCMNG_LOG_LEVEL");
  const logLevel =
    llEnv !== undefined
      ? checkLogLevel(llEnv, "IOCMNG_LOG_LEVEL")
      : (file.logLevel ?? ENV_DEFAULTS.IOCMNG_LOG_LEVEL);
  const prefixEnv = envStr(env, "IOCMNG_PREFIX");
  const prefix =
    prefixEnv !== undefined ? checkPrefix(prefixEnv, "IOCMNG_PREFIX") : (file.prefix ?? null);

  // IOCMNG_DISABLE_DEVICES is the new name; IOCMNG_DISABLE_OPHYD (the seed's) still works.
  let disableDevices = file.disableDevices ?? true;
  const ophyd = envStr(env, "IOCMNG_DISABLE_OPHYD");
  const devices = envStr(env, "IOCMNG_DISABLE_DEVICES");
  if (ophyd !== undefined) disableDevices = parseBool(ophyd, "IOCMNG_DISABLE_OPHYD");
  if (devices !== undefined) disableDevices = parseBool(devices, "IOCMNG_DISABLE_DEVICES");

  const tokenRaw = env.IOCMNG_API_TOKEN;
  let apiToken: string | null = null;
  if (tokenRaw !== undefined && tokenRaw.trim() !== "") {
    apiToken = tokenRaw.trim();
    if (/\s/.test(apiToken) || apiToken.length > 4096) {
      throw new ConfigError(
        "IOCMNG_API_TOKEN must be a single word without whitespace, at most 4096 characters",
      );
    }
  }

  let beamlineConfigFile = envStr(env, "IOCMNG_BEAMLINE_CONFIG") ?? null;
  let valuesLabel = "IOCMNG_BEAMLINE_CONFIG";
  if (beamlineConfigFile === null && file.beamlineConfig !== undefined && configFile !== null) {
    valuesLabel = `${configFile}: beamline_config`;
    // Relative paths in the config file are relative to that file, like most tools do.
    beamlineConfigFile = file.beamlineConfig;
  }
  let beamline: string | null = null;
  let namespace: string | null = null;
  let beamlineValues: Record<string, unknown> | null = null;
  if (beamlineConfigFile !== null) {
    const text = readTextFile(beamlineConfigFile, valuesLabel, MAX_VALUES_FILE_BYTES);
    const v = parseValuesFile(text, beamlineConfigFile);
    beamline = v.beamline;
    namespace = v.namespace;
    beamlineValues = v.values;
  }

  return {
    host,
    port,
    pluginsDir,
    stateDir,
    logLevel,
    prefix,
    beamline,
    namespace,
    beamlineValues,
    apiToken,
    disableDevices,
    plugins: file.plugins,
    configFile,
    beamlineConfigFile,
  };
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
