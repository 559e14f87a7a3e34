/**
 * The 2.7.9 routes' view of the runtime (`CompatPort` of src/api/compat.ts) over the plugin
 * controller: 2.7.9's plugin descriptions from what the runtime holds, adds with the kind
 * detected from the code, and `local_path` adds (a directory on the server, accepted only under
 * IOCMNG_LOCAL_PATH_ROOTS, snapshotted into a git repository so restarts and restores work the
 * same as for git plugins).
 */
import { mkdirSync, realpathSync, rmSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import type { CompatAddRequest, CompatJobResult, CompatPort, CompatResult } from "../api/compat.ts";
import { type CompatPlugin, compatValidation } from "../api/compat-info.ts";
import { errorMessage } from "../common/errors.ts";
import { snapshotDir } from "../common/snapshot.ts";
import { RESERVED_TASK_PVS } from "../declarative/spec-ports.ts";
import type { PluginController } from "../plugins/controller.ts";
import type { LoadedPlugin } from "../plugins/plugin.ts";
import type { ValidationReport } from "../plugins/types.ts";

export interface AdapterDeps {
  controller: PluginController;
  pluginsDir: string;
  /** Directories under which `local_path` may point (none: local_path refused). */
  localPathRoots: readonly string[];
  /** Device names of the values file (`available`) and those in use (`created`). */
  devices(): { available: string[]; created: string[] };
}

/** PV names the framework creates (not part of `pv_definitions`): the 2.7.9 default PVs. */
const FRAMEWORK_PVS: ReadonlySet<string> = new Set(RESERVED_TASK_PVS);

/** What 2.7.9 fields a request carried that our runtime does not keep itself. */
interface Extra {
  local_path: string | null;
  auto_start_on_boot: boolean;
  autostart_order: number | null;
}

function typeName(kind: string, states: readonly string[] | undefined): string {
  if (kind === "double") return "float";
  if (kind === "long") return "int";
  if (kind === "enum" && states?.length === 2) return "bool";
  return kind;
}

/** A native (non-declarative) plugin's declared PVs, in 2.7.9's normalised form. */
function nativeDefinitions(p: LoadedPlugin): CompatPlugin["pvDefinitions"] {
  const out: CompatPlugin["pvDefinitions"] = { inputs: {}, outputs: {} };
  for (const [name, { pv }] of p.pvs) {
    if (FRAMEWORK_PVS.has(name)) continue;
    const m = pv.meta;
    const type = typeName(pv.kind, m.states);
    const def: Record<string, unknown> = {
      type,
      value: typeof pv.value === "object" ? [...pv.value] : pv.value,
    };
    if (type === "float") {
      Object.assign(def, {
        unit: m.units ?? "",
        prec: m.precision ?? 3,
        low: m.displayLow ?? 0,
        high: m.displayHigh ?? 100,
      });
    }
    if (type === "bool") Object.assign(def, { znam: m.states?.[0], onam: m.states?.[1] });
    (pv.writable ? out.inputs : out.outputs)[name] = def;
  }
  return out;
}

function statusOf(p: LoadedPlugin): CompatPlugin["status"] {
  if (p.stopped) return "stopped";
  if (p.startError !== undefined || p.host.isEnded) return "error";
  if (p.kind === "job") return "loaded";
  return p.auto_start ? "running" : "loaded";
}

function toValidation(
  r: ValidationReport | undefined,
  kind: "task" | "job" | null,
  className: string | null,
) {
  return r === undefined ? undefined : compatValidation(r, kind, className);
}

export class CompatAdapter implements CompatPort {
  private readonly extra = new Map<string, Extra>();
  constructor(private readonly deps: AdapterDeps) {}

  private find(name: string): LoadedPlugin | undefined {
    const key = name.toLowerCase();
    return this.deps.controller.loadedPlugins().find((p) => p.name.toLowerCase() === key);
  }

  /** 2.7.9's description of a loaded plugin. */
  describe(p: LoadedPlugin): CompatPlugin {
    const extra = this.extra.get(p.name.toLowerCase());
    const spec = p.declarative;
    const cc = p.pvs.get("CYCLE_COUNT")?.pv.value;
    const status = statusOf(p);
    const pvDefinitions: CompatPlugin["pvDefinitions"] = spec
      ? {
          inputs: Object.fromEntries(
            spec.ports.filter((x) => x.direction === "input").map((x) => [x.name, x.normalized]),
          ),
          outputs: Object.fromEntries(
            spec.ports.filter((x) => x.direction === "output").map((x) => [x.name, x.normalized]),
          ),
        }
      : nativeDefinitions(p);
    return {
      name: p.name,
      kind: p.kind,
      className: p.className ?? null,
      git_url: extra?.local_path
        ? null
        : p.git_url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@"),
      local_path: extra?.local_path ?? null,
      path: p.path ?? "",
      branch: p.branch ?? "main",
      status,
      auto_start: p.auto_start,
      // Every plugin added through REST is restored at boot (our state store), so this is true.
      auto_start_on_boot: true,
      autostart_order: extra?.autostart_order ?? null,
      pv_prefix: p.prefix,
      plugin_prefix: spec?.prefix ?? p.name.toUpperCase(),
      mode: p.kind === "task" ? (spec?.mode ?? p.mode) : null,
      overrides: p.overrides,
      parameters: p.parameters,
      pvDefinitions,
      builtPvs: [...p.pvs.keys()],
      ...(p.kind === "task"
        ? { running: status === "running", cycleCount: typeof cc === "number" ? cc : 0 }
        : {}),
    };
  }

  list(): CompatPlugin[] {
    return this.deps.controller
      .loadedPlugins()
      .map((p) => this.describe(p))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  get(name: string): CompatPlugin | undefined {
    const p = this.find(name);
    return p ? this.describe(p) : undefined;
  }

  /** Copies `local_path` (checked against the roots) into a git snapshot; returns its file:// URL. */
  private snapshotLocal(name: string, localPath: string): { url: string } | { error: string } {
    if (this.deps.localPathRoots.length === 0) {
      return {
        error:
          "local_path is not accepted: set IOCMNG_LOCAL_PATH_ROOTS to the directories plugins may be loaded from",
      };
    }
    let real: string;
    try {
      real = realpathSync(resolve(localPath));
    } catch {
      return { error: `Local plugin path '${localPath}' not found or is not a directory` };
    }
    const inside = this.deps.localPathRoots.some((root) => {
      let r: string;
      try {
        r = realpathSync(root);
      } catch {
        return false;
      }
      const rel = relative(r, real);
      return rel === "" || (!rel.startsWith("..") && !rel.startsWith(sep) && rel !== "..");
    });
    if (!inside) {
      return {
        error: `local_path '${localPath}' is outside IOCMNG_LOCAL_PATH_ROOTS (${this.deps.localPathRoots.join(":")})`,
      };
    }
    const dest = join(this.deps.pluginsDir, ".local", name);
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(dest, { recursive: true });
    try {
      return { url: snapshotDir(real, dest, "iocmng") };
    } catch (e) {
      return { error: `cannot snapshot local_path: ${errorMessage(e)}` };
    }
  }

  async add(
    req: CompatAddRequest,
    kind: "task" | "job" | "auto",
  ): Promise<CompatResult<CompatPlugin>> {
    let gitUrl = req.git_url;
    let branch: string | undefined = req.branch;
    if (req.local_path !== undefined) {
      // 2.7.9: local_path wins over git_url when both are given.
      const snap = this.snapshotLocal(req.name, req.local_path);
      if ("error" in snap)
        return {
          ok: false,
          code: snap.error.includes("outside") || snap.error.includes("not accepted") ? 403 : 422,
          message: snap.error,
        };
      gitUrl = snap.url;
      branch = "main";
    }
    if (gitUrl === undefined)
      return { ok: false, code: 422, message: "Either git_url or local_path must be provided" };
    const r = await this.deps.controller.add(
      {
        name: req.name,
        kind: kind === "auto" ? "task" : kind,
        git_url: gitUrl,
        branch,
        ...(req.path !== "" ? { path: req.path } : {}),
        ...(req.parameters ? { parameters: req.parameters } : {}),
        auto_start: req.auto_start,
        ...(req.pat ? { pat: req.pat } : {}),
        ...(req.pat_env ? { pat_env: req.pat_env } : {}),
      },
      { detectKind: kind === "auto" },
    );
    if (!r.ok) {
      if (req.local_path !== undefined)
        rmSync(join(this.deps.pluginsDir, ".local", req.name), { recursive: true, force: true });
      const message =
        r.code === 409 ? `Plugin '${req.name}' already exists (${r.message})` : r.message;
      return {
        ok: false,
        code: r.code,
        message,
        ...(r.validation ? { validation: compatValidation(r.validation, null, null) } : {}),
      };
    }
    this.extra.set(req.name.toLowerCase(), {
      local_path: req.local_path ?? null,
      auto_start_on_boot: req.auto_start_on_boot,
      autostart_order: req.autostart_order,
    });
    const p = this.find(req.name);
    if (!p)
      return { ok: false, code: 500, message: `Plugin '${req.name}' vanished right after loading` };
    const info = this.describe(p);
    const validation = toValidation(r.validation, p.kind, info.className);
    return { ok: true, message: r.message, value: info, ...(validation ? { validation } : {}) };
  }

  async remove(name: string): Promise<CompatResult> {
    const p = this.find(name);
    if (!p) return { ok: false, code: 404, message: `Plugin '${name}' not found` };
    const r = await this.deps.controller.remove(p.kind, p.name);
    if (!r.ok) return { ok: false, code: r.code, message: r.message };
    const extra = this.extra.get(p.name.toLowerCase());
    if (extra?.local_path)
      rmSync(join(this.deps.pluginsDir, ".local", p.name), { recursive: true, force: true });
    this.extra.delete(p.name.toLowerCase());
    return { ok: true, message: r.message, value: undefined };
  }

  async restart(name: string): Promise<CompatResult<CompatPlugin>> {
    const p = this.find(name);
    if (!p) return { ok: false, code: 404, message: `Plugin '${name}' not found` };
    const extra = this.extra.get(p.name.toLowerCase());
    if (extra?.local_path) {
      // 2.7.9 copies local_path again on restart: take a fresh snapshot at the same place.
      const snap = this.snapshotLocal(p.name, extra.local_path);
      if ("error" in snap) return { ok: false, code: 422, message: snap.error };
    }
    const r = await this.deps.controller.restart(p.name);
    const now = this.find(name);
    const className = now?.className ?? null;
    const validation = toValidation(r.validation, now?.kind ?? p.kind, className);
    if (!r.ok)
      return { ok: false, code: r.code, message: r.message, ...(validation ? { validation } : {}) };
    if (!now)
      return { ok: false, code: 500, message: `Plugin '${name}' vanished during the restart` };
    return {
      ok: true,
      message: r.message,
      value: this.describe(now),
      ...(validation ? { validation } : {}),
    };
  }

  async runJob(name: string): Promise<CompatResult<CompatJobResult>> {
    const r = await this.deps.controller.runJob(name);
    if (!r.ok) return { ok: false, code: r.code, message: r.message };
    return { ok: true, message: r.message, value: r.value };
  }

  results(name: string): CompatJobResult[] | undefined {
    return this.deps.controller.jobResults(name);
  }

  devices(): { available: string[]; created: string[] } {
    return this.deps.devices();
  }
}
