/**
 * The restart job of the controller: re-clone and reload a plugin with its PV values kept, and on
 * failure bring the previous version back from its clone so a bad push does not lose the plugin.
 * The controller keeps the bookkeeping (busy names, the plugin list); this is the sequence.
 */
import { rm } from "node:fs/promises";
import type { Logger } from "pino";
import type { PvValue } from "../pv/types.ts";
import type { PipelineOutcome, PipelineSource } from "./pipeline.ts";
import { type LoadedPlugin, type LoadSpec, loadSpec } from "./plugin.ts";
import type { OpResult, PluginInfo } from "./types.ts";

/** What the restart needs from the controller. */
export interface ReloadDeps {
  log: Logger;
  /** The token for `old` (its own, or its allowed pat_env's). */
  pat: string | undefined;
  stop(p: LoadedPlugin): Promise<void>;
  /** Drops `p` from the plugin list (it is stopped). */
  unlist(p: LoadedPlugin): void;
  pipeline(
    spec: LoadSpec,
    source: PipelineSource,
    keep: Map<string, PvValue>,
  ): Promise<PipelineOutcome>;
  persist(p: LoadedPlugin): Promise<void>;
  info(p: LoadedPlugin): PluginInfo;
}

/** PV values a restart carries over (not the runtime's own STATUS, MESSAGE, RUN). */
function keptValues(old: LoadedPlugin): Map<string, PvValue> {
  const keep = new Map<string, PvValue>();
  for (const [short, { pv }] of old.pvs) {
    if (short !== "STATUS" && short !== "MESSAGE" && short !== "RUN") keep.set(short, pv.value);
  }
  return keep;
}

/** Re-clones and reloads `old`; PV values are kept. On failure the old version is reloaded. */
export async function reloadPlugin(
  old: LoadedPlugin,
  d: ReloadDeps,
): Promise<OpResult<PluginInfo>> {
  const spec = loadSpec(old, {
    overrides: old.overrides,
    auto_start: old.auto_start,
    pat: d.pat,
    addedAt: old.addedAt,
  });
  const keep = keptValues(old);
  await d.stop(old);
  d.unlist(old);
  const r = await d.pipeline(spec, { from: "git" }, keep);
  if (r.ok && r.plugin !== undefined) {
    await d.persist(r.plugin);
    await rm(old.cloneDir, { recursive: true, force: true }).catch(() => {});
    return {
      ok: true,
      message: `${old.kind} ${old.name} restarted`,
      value: d.info(r.plugin),
      validation: r.report,
    };
  }
  // Bring the previous version back from its clone so a bad push does not lose the plugin.
  const back = await d.pipeline(spec, { from: "disk", cloneDir: old.cloneDir }, keep);
  if (!back.ok)
    d.log.error(
      { plugin: old.name },
      `previous version could not be reloaded: ${back.report.message}`,
    );
  const outcome = !back.ok
    ? "plugin unloaded"
    : back.plugin?.startError === undefined
      ? "previous version reloaded"
      : "previous version reloaded but not started";
  return {
    ok: false,
    code: 422,
    message: `restart failed (${outcome}): ${r.report.message}`,
    validation: r.report,
  };
}
