/**
 * Persistent state of the server: the plugins added through REST (so they come back after a
 * restart, from their on-disk clones) and the autosaved values of their PVs.
 *
 * Layout of the state directory (one server process per directory):
 *   plugins.json              {"version":1,"plugins":[PluginRecord…]}
 *   autosave/<plugin>.json    {"version":1,"plugin":"<name>","values":{"<PV short name>":<JSON>}}
 * Every file is replaced atomically. A file that cannot be read or parsed is moved aside as
 * `<name>.corrupt-<UTC time>` and reported; boot always goes on.
 */
import { copyFile, mkdir, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { PLUGIN_NAME_RE } from "../common/names.ts";
import { isPlainObject } from "../common/object.ts";
import type { Logger } from "../log.ts";
import { atomicWriteFile, TMP_MARKER } from "./atomic.ts";
import { DurableLog } from "./durable-log.ts";

/** A plugin as persisted: everything needed to load it again without the network. Never a PAT. */
export interface PluginRecord {
  name: string;
  kind: "task" | "job";
  git_url: string;
  branch?: string;
  path?: string;
  parameters: Record<string, unknown>;
  auto_start: boolean;
  /** Name of the env var holding the token, when the plugin needs one to re-clone. */
  pat_env?: string;
  /** Absolute path of the plugin's clone. */
  cloneDir: string;
  /** ISO-8601 time the plugin was added. */
  addedAt: string;
  /** Set while quarantined (why): restored listed in ERROR, its process not started. */
  quarantined?: string;
}

/** Version of the files' format; a higher one is refused (moved aside) rather than misread. */
export const STATE_FORMAT_VERSION = 1;
/** File of the plugin registry inside the state directory. */
export const PLUGINS_FILE = "plugins.json";
/** Sub-directory of the autosave files. */
export const AUTOSAVE_DIR = "autosave";
/** Append-only log of put-completion writes (durable-log.ts), inside the state directory. */
export const DURABLE_LOG_FILE = "autosave.log";
/** Delay between the first unsaved autosave change and its write (changes meanwhile coalesce). */
export const AUTOSAVE_DELAY_MS = 250;
/** Largest state file read back (a bigger one is treated as corrupt). */
export const MAX_STATE_FILE_BYTES = 256 << 20;
/** Longest array autosaved; bigger waveforms are data, not setpoints, and are not saved. */
export const MAX_AUTOSAVE_ELEMENTS = 1 << 20;

type Values = Record<string, unknown>;

/** Checks one persisted record; returns the clean record or the reason it is unusable. */
export function validatePluginRecord(x: unknown): PluginRecord | string {
  if (!isPlainObject(x)) return "not an object";
  const { name, kind, git_url, branch, path, parameters, auto_start, pat_env, cloneDir, addedAt } =
    x;
  const { quarantined } = x;
  if (typeof name !== "string" || !PLUGIN_NAME_RE.test(name)) return "invalid name";
  if (kind !== "task" && kind !== "job") return `${name}: kind must be task or job`;
  if (typeof git_url !== "string" || git_url === "") return `${name}: missing git_url`;
  if (typeof cloneDir !== "string" || cloneDir === "") return `${name}: missing cloneDir`;
  if (branch !== undefined && typeof branch !== "string") return `${name}: branch not a string`;
  if (path !== undefined && typeof path !== "string") return `${name}: path not a string`;
  if (pat_env !== undefined && typeof pat_env !== "string") return `${name}: pat_env not a string`;
  if (parameters !== undefined && !isPlainObject(parameters)) return `${name}: bad parameters`;
  if (auto_start !== undefined && typeof auto_start !== "boolean") {
    return `${name}: auto_start not a boolean`;
  }
  const rec: PluginRecord = {
    name,
    kind,
    git_url,
    parameters: (parameters as Record<string, unknown> | undefined) ?? {},
    auto_start: (auto_start as boolean | undefined) ?? true,
    cloneDir,
    addedAt: typeof addedAt === "string" ? addedAt : new Date(0).toISOString(),
  };
  if (branch !== undefined) rec.branch = branch;
  if (path !== undefined) rec.path = path;
  if (pat_env !== undefined) rec.pat_env = pat_env;
  if (typeof quarantined === "string" && quarantined !== "") rec.quarantined = quarantined;
  return rec;
}

/** Copy of a record with only the known fields: a stray `pat` never reaches the disk. */
function cleanRecord(r: PluginRecord): PluginRecord {
  const out: PluginRecord = {
    name: r.name,
    kind: r.kind,
    git_url: r.git_url,
    parameters: r.parameters,
    auto_start: r.auto_start,
    cloneDir: r.cloneDir,
    addedAt: r.addedAt,
  };
  if (r.branch !== undefined) out.branch = r.branch;
  if (r.path !== undefined) out.path = r.path;
  if (r.pat_env !== undefined) out.pat_env = r.pat_env;
  if (r.quarantined !== undefined) out.quarantined = r.quarantined;
  return out;
}

/**
 * Converts a PV value to JSON: typed arrays become lists, non-finite numbers become the strings
 * "NaN"/"Infinity"/"-Infinity" (JSON has no literal for them; Pv.normalize parses them back).
 */
export function toAutosaveJson(value: unknown): unknown {
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value === "bigint") return Number(value);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number>, (x) => toAutosaveJson(Number(x)));
  }
  if (Array.isArray(value)) return value.map(toAutosaveJson);
  return value;
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, "-");
}

function checkPluginName(plugin: string): void {
  // The name becomes a file name: anything else could escape the autosave directory.
  if (!PLUGIN_NAME_RE.test(plugin))
    throw new Error(`invalid plugin name ${JSON.stringify(plugin)}`);
}

/** The persistent store of plugin records and autosaved PV values (one per state directory). */
export class StateStore {
  readonly dir: string;
  private readonly logger: Logger;
  private plugins = new Map<string, PluginRecord>();
  /** Full autosave content per plugin as last read or written. */
  private saved = new Map<string, Values>();
  /** Changes not yet written. */
  private pending = new Map<string, Values>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** PVs already reported as too large to autosave (warned once). */
  private readonly tooBig = new Set<string>();
  // All file operations run one after the other: no two writers race on a file.
  private chain: Promise<void> = Promise.resolve();
  /** Durable (put-completion) writes, compacted into the autosave files. */
  private readonly log: DurableLog;

  /** `dir` is the state directory (created by load()). */
  constructor(dir: string, logger: Logger) {
    this.dir = dir;
    this.logger = logger.child({ component: "state" });
    this.log = new DurableLog(join(dir, DURABLE_LOG_FILE));
  }

  private get pluginsFile(): string {
    return join(this.dir, PLUGINS_FILE);
  }

  private autosaveFile(plugin: string): string {
    return join(this.dir, AUTOSAVE_DIR, `${plugin}.json`);
  }

  private run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.then(
      () => {},
      () => {},
    );
    return p;
  }

  /** Moves an unusable file aside; returns the warning to report. */
  private async quarantine(file: string, why: string): Promise<string> {
    const aside = `${file}.corrupt-${stamp()}`;
    try {
      await rename(file, aside);
      const msg = `${file}: ${why}; moved aside to ${aside}`;
      this.logger.warn({ file, aside }, msg);
      return msg;
    } catch (e) {
      const msg = `${file}: ${why}; could not move it aside (${(e as NodeJS.ErrnoException).code ?? e}), it will be overwritten`;
      this.logger.warn({ file }, msg);
      return msg;
    }
  }

  /** Reads a JSON state file: null when absent, or the reason it is unusable. */
  private async readJson(
    file: string,
  ): Promise<{ ok: true; value: unknown } | { ok: false; why: string } | null> {
    let text: string;
    try {
      const buf = await readFile(file);
      if (buf.length > MAX_STATE_FILE_BYTES) return { ok: false, why: "file too large" };
      text = new TextDecoder("utf-8", { fatal: true }).decode(buf);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return null;
      if (e instanceof TypeError) return { ok: false, why: "not valid UTF-8" };
      return { ok: false, why: `unreadable (${code ?? String(e)})` };
    }
    try {
      return { ok: true, value: JSON.parse(text) };
    } catch (e) {
      return { ok: false, why: `not valid JSON (${(e as Error).message})` };
    }
  }

  private async removeStaleTmp(dir: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const i = n.indexOf(TMP_MARKER);
      if (!n.startsWith(".") || i < 0) continue;
      const pid = Number(n.slice(i + TMP_MARKER.length).split("-")[0]);
      if (pid === process.pid) continue;
      // Left by a process killed mid-write: the real file is intact, the temporary is garbage.
      await unlink(join(dir, n)).catch(() => {});
    }
  }

  /**
   * Creates the state directory if needed and reads the plugin records. Content problems never
   * throw: the file is moved aside and a warning returned. Throws only when the directory itself
   * cannot be created.
   */
  async load(): Promise<{ plugins: PluginRecord[]; warnings: string[] }> {
    const r = await this.loadRecords();
    try {
      await this.compactLog();
    } catch (err) {
      const msg = `durable writes log ${DURABLE_LOG_FILE} not compacted: ${String(err)}`;
      this.logger.warn(msg);
      r.warnings.push(msg);
    }
    return r;
  }

  private loadRecords(): Promise<{ plugins: PluginRecord[]; warnings: string[] }> {
    return this.run(async () => {
      try {
        await mkdir(join(this.dir, AUTOSAVE_DIR), { recursive: true, mode: 0o700 });
      } catch (e) {
        throw new Error(
          `state directory ${this.dir} cannot be created: ${(e as NodeJS.ErrnoException).code ?? e}`,
        );
      }
      await this.removeStaleTmp(this.dir);
      await this.removeStaleTmp(join(this.dir, AUTOSAVE_DIR));
      const warnings: string[] = [];
      this.plugins = new Map();
      const r = await this.readJson(this.pluginsFile);
      if (r !== null && !r.ok) {
        warnings.push(await this.quarantine(this.pluginsFile, r.why));
      } else if (r !== null) {
        const doc = r.value;
        if (!isPlainObject(doc) || !Array.isArray(doc.plugins)) {
          warnings.push(await this.quarantine(this.pluginsFile, "not a plugin registry"));
        } else if (typeof doc.version !== "number" || doc.version > STATE_FORMAT_VERSION) {
          warnings.push(
            await this.quarantine(
              this.pluginsFile,
              `unsupported format version ${String(doc.version)} (this server reads ${STATE_FORMAT_VERSION})`,
            ),
          );
        } else {
          const bad: string[] = [];
          for (const item of doc.plugins) {
            const rec = validatePluginRecord(item);
            if (typeof rec === "string") bad.push(rec);
            else if (this.plugins.has(rec.name)) bad.push(`${rec.name}: duplicate`);
            else this.plugins.set(rec.name, rec);
          }
          if (bad.length > 0) {
            // Keep a copy of the original so the skipped entries can be recovered by hand.
            const copy = `${this.pluginsFile}.corrupt-${stamp()}`;
            await copyFile(this.pluginsFile, copy).catch(() => {});
            const msg = `${this.pluginsFile}: skipped ${bad.length} unusable record(s) (${bad.slice(0, 5).join("; ")}); original kept as ${copy}`;
            this.logger.warn(msg);
            warnings.push(msg);
          }
        }
      }
      return { plugins: [...this.plugins.values()], warnings };
    });
  }

  /** The records currently stored (after load/put/remove). */
  listPlugins(): PluginRecord[] {
    return [...this.plugins.values()];
  }

  private async writePlugins(next: Map<string, PluginRecord>): Promise<void> {
    const doc = { version: STATE_FORMAT_VERSION, plugins: [...next.values()].map(cleanRecord) };
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await atomicWriteFile(this.pluginsFile, `${JSON.stringify(doc, null, 2)}\n`);
    this.plugins = next;
  }

  /** Adds or replaces the record of `rec.name` and writes the registry; rejects if the write fails. */
  putPlugin(rec: PluginRecord): Promise<void> {
    const checked = validatePluginRecord(rec);
    if (typeof checked === "string") {
      return Promise.reject(new Error(`invalid plugin record: ${checked}`));
    }
    return this.run(async () => {
      const next = new Map(this.plugins);
      next.set(checked.name, checked);
      await this.writePlugins(next);
    });
  }

  /** Removes the record of `name` (no-op when absent) and writes the registry. */
  removePlugin(name: string): Promise<void> {
    return this.run(async () => {
      if (!this.plugins.has(name)) return;
      const next = new Map(this.plugins);
      next.delete(name);
      await this.writePlugins(next);
    });
  }

  private async readAutosave(plugin: string): Promise<Values> {
    const cached = this.saved.get(plugin);
    if (cached !== undefined) return cached;
    const file = this.autosaveFile(plugin);
    const r = await this.readJson(file);
    let values: Values = {};
    if (r !== null && !r.ok) {
      await this.quarantine(file, r.why);
    } else if (r !== null) {
      const doc = r.value;
      if (
        !isPlainObject(doc) ||
        !isPlainObject(doc.values) ||
        typeof doc.version !== "number" ||
        doc.version > STATE_FORMAT_VERSION
      ) {
        await this.quarantine(file, "not an autosave file of this version");
      } else {
        values = doc.values;
      }
    }
    this.saved.set(plugin, values);
    return values;
  }

  /** Autosaved values of a plugin (PV short name → JSON value), including unwritten changes. */
  loadAutosave(plugin: string): Promise<Record<string, unknown>> {
    try {
      checkPluginName(plugin);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.run(async () => {
      const values = await this.readAutosave(plugin);
      return { ...values, ...(this.pending.get(plugin) ?? {}) };
    });
  }

  /** Records a PV value to save; writes are coalesced and happen within AUTOSAVE_DELAY_MS. */
  saveAutosave(plugin: string, pv: string, value: unknown): void {
    checkPluginName(plugin);
    const len =
      Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView))
        ? (value as ArrayLike<unknown>).length
        : 0;
    if (len > MAX_AUTOSAVE_ELEMENTS) {
      const key = `${plugin}:${pv}`;
      if (!this.tooBig.has(key)) {
        this.tooBig.add(key);
        this.logger.warn(
          { plugin, pv, elements: len },
          `not autosaving ${key}: more than ${MAX_AUTOSAVE_ELEMENTS} elements`,
        );
      }
      return;
    }
    let p = this.pending.get(plugin);
    if (p === undefined) {
      p = {};
      this.pending.set(plugin, p);
    }
    p[pv] = toAutosaveJson(value);
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flushAutosave().catch((e) => {
          this.logger.warn({ err: e }, "autosave write failed; will retry on the next change");
        });
      }, AUTOSAVE_DELAY_MS);
      // Pending values are written by flush() at shutdown; the timer must not keep a CLI alive.
      this.timer.unref?.();
    }
  }

  private flushAutosave(): Promise<void> {
    return this.run(async () => {
      // Everything the log holds up to here is in `pending` (saveDurable queues it there first).
      const logged = this.log.committed;
      const batch = this.pending;
      this.pending = new Map();
      let firstError: unknown = null;
      if (batch.size > 0) {
        // saveAutosave may come before load(): make sure the directory exists.
        await mkdir(join(this.dir, AUTOSAVE_DIR), { recursive: true, mode: 0o700 }).catch(() => {});
      }
      for (const [plugin, changes] of batch) {
        try {
          const next = { ...(await this.readAutosave(plugin)), ...changes };
          const doc = { version: STATE_FORMAT_VERSION, plugin, values: next };
          await atomicWriteFile(this.autosaveFile(plugin), JSON.stringify(doc));
          this.saved.set(plugin, next);
        } catch (e) {
          firstError ??= e;
          // Put the changes back unless newer ones arrived meanwhile.
          this.pending.set(plugin, { ...changes, ...(this.pending.get(plugin) ?? {}) });
        }
      }
      if (firstError !== null) throw firstError;
      if (logged > 0) await this.log.truncateIfUnchanged(logged).catch(() => false);
    });
  }

  /** Forgets a plugin's autosaved values and deletes its file (plugin removed). */
  dropAutosave(plugin: string): Promise<void> {
    try {
      checkPluginName(plugin);
    } catch (e) {
      return Promise.reject(e);
    }
    this.pending.delete(plugin);
    return this.run(async () => {
      this.pending.delete(plugin);
      this.saved.delete(plugin);
      await unlink(this.autosaveFile(plugin)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw e;
      });
    });
  }

  /**
   * A value that must be on disk before the write is acknowledged (put-completion): appended to
   * the log with fdatasync (shared by the writes of the same tick), and queued for the batched
   * autosave like any other change. Rejects, with the reason, when it cannot be stored.
   */
  async saveDurable(plugin: string, pv: string, value: unknown): Promise<void> {
    checkPluginName(plugin);
    this.saveAutosave(plugin, pv, value);
    await mkdir(this.dir, { recursive: true, mode: 0o700 }).catch(() => {});
    await this.log.append({ plugin, pv, value: toAutosaveJson(value) });
  }

  /** Boot: values of the log go into the autosave files (known plugins only), then it is emptied. */
  private async compactLog(): Promise<void> {
    const records = await this.log.replay();
    if (records.length === 0) return;
    const before = this.log.committed;
    for (const r of records) {
      if (this.plugins.has(r.plugin)) this.saveAutosave(r.plugin, r.pv, r.value);
    }
    await this.flush();
    await this.log.truncateIfUnchanged(before);
    this.logger.info({ records: records.length }, "durable writes compacted into autosave");
  }

  /** Writes every pending autosave change now and waits for all queued writes. */
  async flush(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    await this.flushAutosave();
    await this.chain;
  }
}
