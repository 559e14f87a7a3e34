/** The durable record of a loaded plugin (state/), written after an add, restart or quarantine. */
import type { Logger } from "pino";
import type { PluginRecord, StateStore } from "../state/index.ts";
import { type LoadedPlugin, sourceOf } from "./plugin.ts";

/** Saves `p`'s record; a failure is logged, never thrown (the plugin stays loaded). */
export async function persistPlugin(
  state: StateStore,
  p: LoadedPlugin,
  log: Logger,
): Promise<void> {
  const rec: PluginRecord = {
    ...sourceOf(p),
    parameters: p.overrides,
    auto_start: p.auto_start,
    cloneDir: p.cloneDir,
    addedAt: p.addedAt,
    ...(p.quarantined ? { quarantined: p.quarantined } : {}),
  };
  const t0 = performance.now();
  try {
    await state.putPlugin(rec);
  } catch (err) {
    log.error({ err, plugin: p.name }, "cannot persist plugin record");
  }
  // Read with the pipeline's steps by scripts/bench/plugins-add-binary.ts (where an add's time goes).
  log.debug({ step: "persist", ms: Math.round(performance.now() - t0) }, "step done");
}
