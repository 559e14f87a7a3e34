/**
 * Boot restore of a quarantined plugin: listed in ERROR with its PVs (values from autosave) and
 * no process; none of its code runs. A REST restart re-clones and clears the quarantine.
 */
import type { Logger } from "pino";
import type { ServerConfig } from "../config.ts";
import { pvPrefixFor } from "../config.ts";
import type { PvRegistry } from "../pv/registry.ts";
import type { PluginRecord, StateStore } from "../state/index.ts";
import { type PvBridge, showFailure } from "./bridge.ts";
import { defaultPvDefs, loadPluginConfig, resolveParameters } from "./config.ts";
import { EndedHost } from "./host/process-host.ts";
import { defaultSandboxConfig, effectiveLimits } from "./host/sandbox.ts";
import { resolvePluginDir } from "./loader.ts";
import { type LoadedPlugin, loadSpec } from "./plugin.ts";

/** What building a held plugin needs from the controller. */
export interface HeldContext {
  config: ServerConfig;
  registry: PvRegistry;
  state: StateStore;
  bridge: PvBridge;
  log: Logger;
}

/** The held plugin, its PVs created and showing the failure; the caller lists it. */
export async function loadHeldPlugin(rec: PluginRecord, ctx: HeldContext): Promise<LoadedPlugin> {
  const dir = await resolvePluginDir(rec.cloneDir, rec.path);
  const cfg = await loadPluginConfig(dir, rec.kind);
  const resolved = resolveParameters(cfg, rec.parameters ?? {});
  const p: LoadedPlugin = {
    ...loadSpec(rec, {
      overrides: rec.parameters ?? {},
      auto_start: rec.auto_start,
      addedAt: rec.addedAt,
    }),
    mode: resolved.mode,
    interval: resolved.interval,
    prefix: pvPrefixFor(ctx.config, rec.name),
    parameters: resolved.parameters,
    cloneDir: rec.cloneDir,
    pluginDir: dir,
    host: new EndedHost(rec.quarantined ?? "quarantined"),
    limits: effectiveLimits(ctx.config.sandbox ?? defaultSandboxConfig(), cfg.limits),
    restart: cfg.restart ?? "on-failure",
    failures: [],
    files: [],
    pvs: new Map(),
    unsubs: [],
    autosaved: await ctx.state.loadAutosave(rec.name).catch(() => ({})),
    beforeWatchdog: null,
    triggerBusy: false,
    jobBusy: false,
    stopped: false,
    ...(rec.quarantined ? { quarantined: rec.quarantined, startError: rec.quarantined } : {}),
  };
  const created: string[] = [];
  try {
    for (const def of [...defaultPvDefs(rec.kind), ...cfg.pvs]) {
      const pv = ctx.registry.add(
        { ...def.spec, name: `${p.prefix}:${def.name}` },
        ctx.bridge.writeHandler(p, def.name),
      );
      created.push(pv.name);
      p.pvs.set(def.name, { short: def.name, pv, autosave: def.autosave });
    }
  } catch (e) {
    for (const n of created) ctx.registry.remove(n);
    throw e;
  }
  ctx.bridge.restoreValues(p, null, ctx.log);
  showFailure(p, p.quarantined ?? "quarantined");
  return p;
}
