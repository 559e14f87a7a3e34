/**
 * Boot restore for the controller: reap what a killed server left, load the persisted plugins
 * from their clones (a few at a time, no network), then add those declared in the config file.
 */
import type { Logger } from "pino";
import type { DeclaredPlugin } from "../common/add-request.ts";
import type { ServerConfig } from "../config.ts";
import type { PluginRecord, StateStore } from "../state/index.ts";
import { removeOrphanClones } from "./host/orphans.ts";
import { reapStale } from "./host/reap.ts";
import type { LoadedPlugin } from "./plugin.ts";
import type { OpResult } from "./types.ts";

/** Plugins restored in parallel at boot. */
const RESTORE_CONCURRENCY = 4;

/** What the boot restore needs from the controller. */
export interface BootRestoreContext {
  config: ServerConfig;
  state: StateStore;
  log: Logger;
  isShuttingDown: () => boolean;
  restoreOne: (rec: PluginRecord) => Promise<void>;
  find: (name: string) => LoadedPlugin | undefined;
  add: (d: DeclaredPlugin) => Promise<OpResult<unknown>>;
  remove: (kind: "task" | "job", name: string) => Promise<OpResult>;
  /** Called once, before the first plugin is restored or added, when there is any. */
  onPlugins?: () => void;
}

/** Boot: plugins from state (on-disk clones, no network) then those declared in config. */
export async function bootRestore(ctx: BootRestoreContext): Promise<void> {
  // What plugin processes of a previous server (killed with -9) left running, and their dirs.
  const reaped = reapStale();
  if (reaped > 0) ctx.log.warn({ reaped }, "killed processes left by a previous server's plugins");
  const { plugins, warnings } = await ctx.state.load();
  for (const w of warnings) ctx.log.warn(w);
  // Not after a damaged state file: its plugins' clones are still the operator's way back.
  if (warnings.length === 0) await removeOrphanClones(ctx.config.pluginsDir, plugins, ctx.log);
  if (plugins.length > 0 || ctx.config.plugins.length > 0) ctx.onPlugins?.();
  // A few at a time: boot is mostly waiting on host start-up and imports.
  const queue = [...plugins];
  const lanes = Array.from({ length: Math.min(RESTORE_CONCURRENCY, queue.length) }, async () => {
    for (let rec = queue.shift(); rec; rec = queue.shift()) await ctx.restoreOne(rec);
  });
  await Promise.all(lanes);
  for (const d of ctx.config.plugins) {
    if (ctx.isShuttingDown()) break;
    const cur = ctx.find(d.name);
    if (
      cur &&
      cur.kind === d.kind &&
      cur.git_url === d.git_url &&
      cur.branch === d.branch &&
      cur.path === d.path
    ) {
      continue;
    }
    if (cur) await ctx.remove(cur.kind, cur.name);
    const r = await ctx.add({ ...d });
    if (!r.ok) ctx.log.error({ plugin: d.name }, `declared plugin not loaded: ${r.message}`);
  }
}
