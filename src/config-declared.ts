/**
 * The plugins declared in an IOCMNG_CONFIG file (`plugins`, `tasks`, `jobs` lists): each entry
 * checked like a REST add, plus the file-only rules (no secrets written in the file).
 */
import { isAbsolute } from "node:path";
import {
  addRequestProblem,
  DECLARED_PLUGIN_KEYS,
  type DeclaredPlugin,
} from "./common/add-request.ts";
import { isPlainObject } from "./common/object.ts";
import { show, suggest } from "./common/text.ts";
import { ConfigError } from "./config-error.ts";

/** The `plugins`, `tasks` and `jobs` lists of a config file; names unique across all three. */
export function parsePluginLists(doc: Record<string, unknown>, file: string): DeclaredPlugin[] {
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
