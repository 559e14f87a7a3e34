/** The REST/console view of a loaded plugin (PluginController.list / get / add results). */
import type { JobHistory } from "../compat/job-history.ts";
import { jsonValue } from "./bridge.ts";
import type { LoadedPlugin } from "./plugin.ts";
import type { PluginInfo, PluginPvInfo } from "./types.ts";

/** "no task named "x"" with the name cut to a readable length. */
export function noSuch(what: string, name: unknown): { ok: false; code: 404; message: string } {
  return { ok: false, code: 404, message: `no ${what} named "${String(name).slice(0, 140)}"` };
}

/** A plugin as PluginInfo; a job's results come from `history`. */
export function pluginInfo(p: LoadedPlugin, history: JobHistory): PluginInfo {
  const statusPv = p.pvs.get("STATUS")?.pv;
  const idx = typeof statusPv?.value === "number" ? statusPv.value : 0;
  const status = statusPv?.meta.states?.[idx] ?? String(idx);
  const pvs: PluginPvInfo[] = [...p.pvs.values()].map(({ short, pv }) => ({
    name: short,
    fullName: pv.name,
    kind: pv.kind,
    writable: pv.writable,
    value: jsonValue(pv.value),
    status: pv.status,
    severity: pv.severity,
  }));
  const cc = p.pvs.get("CYCLE_COUNT")?.pv.value;
  return {
    name: p.name,
    kind: p.kind,
    ...(p.kind === "task" ? { mode: p.declarative?.mode ?? p.mode } : {}),
    status,
    message: String(p.pvs.get("MESSAGE")?.pv.value ?? ""),
    ...(p.kind === "task" ? { cycleCount: typeof cc === "number" ? cc : 0 } : {}),
    prefix: p.prefix,
    git_url: p.git_url,
    ...(p.branch !== undefined ? { branch: p.branch } : {}),
    ...(p.path !== undefined ? { path: p.path } : {}),
    parameters: p.parameters,
    pvs,
    running: !p.stopped && p.startError === undefined && !p.host.isEnded && !p.host.isUnresponsive,
    ...(p.quarantined ? { quarantined: p.quarantined } : {}),
    ...(p.kind === "job" ? { results: history.get(p.name) } : {}),
    plugin_type: p.kind,
    class_name: p.className ?? null,
  };
}
