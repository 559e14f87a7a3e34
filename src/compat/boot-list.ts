/**
 * 2.7.9's boot list, `IOCMNG_PLUGINS_CONFIG` (a `plugins.yaml` with a `plugins:` list), read next
 * to our own config file and state. Entries keep 2.7.9's keys; differences on purpose:
 *
 * - `pat:` is refused with the fix (a token in a file ends up in git and in backups): name an
 *   environment variable holding it with `pat_env:` instead.
 * - `kind` is optional: without it the plugin's class decides (task or job), as in 2.7.9.
 * - Order: entries with an integer `autostart_order` first, ascending, then the rest; ties by name.
 *   They load one after another in that order.
 */
import { parse as parseYaml } from "yaml";

/** One plugin of the boot list, validated. */
export interface BootEntry {
  name: string;
  kind?: "task" | "job";
  git_url?: string;
  local_path?: string;
  path: string;
  branch: string;
  pat_env?: string;
  auto_start: boolean;
  auto_start_on_boot: boolean;
  autostart_order: number | null;
  parameters: Record<string, unknown>;
}

/** A refused boot list: the file, the entry and the reason. */
export class BootListError extends Error {
  constructor(file: string, where: string, detail: string) {
    super(`${file}: ${where}${where ? ": " : ""}${detail}`);
    this.name = "BootListError";
  }
}

const KNOWN = new Set([
  "name",
  "kind",
  "git_url",
  "local_path",
  "path",
  "branch",
  "pat",
  "pat_env",
  "auto_start",
  "auto_start_on_boot",
  "autostart_order",
  "parameters",
]);
const NAME_RE = /^[A-Za-z0-9_-]{1,128}$/;
const ENV_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Largest plugins.yaml read. */
export const MAX_BOOT_LIST_BYTES = 256 * 1024;
/** Most entries in it. */
export const MAX_BOOT_ENTRIES = 1000;

const isMap = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

function str(file: string, where: string, v: unknown, field: string, dflt: string): string {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "string") throw new BootListError(file, where, `${field}: expected a string`);
  if (v.length > 4096)
    throw new BootListError(file, where, `${field}: longer than 4096 characters`);
  return v;
}

function flag(file: string, where: string, v: unknown, field: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean")
    throw new BootListError(file, where, `${field}: expected true or false`);
  return v;
}

function entry(file: string, raw: unknown, i: number): BootEntry {
  let where = `plugins[${i}]`;
  if (!isMap(raw)) throw new BootListError(file, where, "expected a mapping");
  if (typeof raw.name === "string") where = `plugins[${i}] (${raw.name})`;
  for (const k of Object.keys(raw)) {
    if (!KNOWN.has(k))
      throw new BootListError(file, where, `${k}: unknown key (known: ${[...KNOWN].join(", ")})`);
  }
  if (raw.pat !== undefined) {
    throw new BootListError(
      file,
      where,
      "pat: a token is not accepted in a file; put it in an environment variable of the server and name it with pat_env: (e.g. pat_env: GIT_TOKEN)",
    );
  }
  const name = str(file, where, raw.name, "name", "");
  if (!NAME_RE.test(name))
    throw new BootListError(file, where, "name: 1..128 of A-Z a-z 0-9 _ - required");
  const git_url =
    raw.git_url === undefined ? undefined : str(file, where, raw.git_url, "git_url", "");
  const local_path =
    raw.local_path === undefined ? undefined : str(file, where, raw.local_path, "local_path", "");
  if (!git_url && !local_path) {
    throw new BootListError(file, where, "Missing name and plugin source (git_url or local_path)");
  }
  if (raw.kind !== undefined && raw.kind !== "task" && raw.kind !== "job") {
    throw new BootListError(file, where, "kind: expected task or job");
  }
  const pat_env =
    raw.pat_env === undefined ? undefined : str(file, where, raw.pat_env, "pat_env", "");
  if (pat_env !== undefined && !ENV_RE.test(pat_env)) {
    throw new BootListError(file, where, "pat_env: expected the name of an environment variable");
  }
  if (raw.parameters !== undefined && raw.parameters !== null && !isMap(raw.parameters)) {
    throw new BootListError(file, where, "parameters: expected a mapping");
  }
  const order = raw.autostart_order;
  return {
    name,
    ...(raw.kind !== undefined ? { kind: raw.kind as "task" | "job" } : {}),
    ...(git_url ? { git_url } : {}),
    ...(local_path ? { local_path } : {}),
    path: str(file, where, raw.path, "path", ""),
    branch: str(file, where, raw.branch, "branch", "main"),
    ...(pat_env !== undefined ? { pat_env } : {}),
    auto_start: flag(file, where, raw.auto_start, "auto_start", true),
    auto_start_on_boot: flag(file, where, raw.auto_start_on_boot, "auto_start_on_boot", false),
    // A non-integer order counts as none, as 2.7.9 does.
    autostart_order: typeof order === "number" && Number.isInteger(order) ? order : null,
    parameters: (raw.parameters as Record<string, unknown> | undefined) ?? {},
  };
}

/** Parses a plugins.yaml text; a missing or empty `plugins:` is an empty list. */
export function parseBootList(text: string, file: string): BootEntry[] {
  if (text.length > MAX_BOOT_LIST_BYTES)
    throw new BootListError(file, "", `larger than ${MAX_BOOT_LIST_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new BootListError(file, "", `not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return [];
  if (!isMap(doc)) throw new BootListError(file, "", "expected a mapping with a plugins: list");
  const list = doc.plugins;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new BootListError(file, "plugins", "expected a list");
  if (list.length > MAX_BOOT_ENTRIES)
    throw new BootListError(file, "plugins", `more than ${MAX_BOOT_ENTRIES} entries`);
  const out = list.map((e, i) => entry(file, e, i));
  const seen = new Set<string>();
  for (const e of out) {
    const key = e.name.toLowerCase();
    if (seen.has(key)) throw new BootListError(file, "plugins", `name ${e.name} appears twice`);
    seen.add(key);
  }
  return out;
}

/** Boot order: integer `autostart_order` ascending first, then the others; ties by name. */
export function orderBootList<T extends { name: string; autostart_order: number | null }>(
  entries: T[],
): T[] {
  return [...entries].sort((a, b) => {
    const ao = a.autostart_order;
    const bo = b.autostart_order;
    if (ao !== null && bo !== null && ao !== bo) return ao - bo;
    if (ao !== null && bo === null) return -1;
    if (ao === null && bo !== null) return 1;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
}
