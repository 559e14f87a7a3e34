/** Persistence: atomic file writes, the plugin registry and the autosave store. */
export { atomicWriteFile, fsyncDir } from "./atomic.ts";
export {
  AUTOSAVE_DELAY_MS,
  type PluginRecord,
  StateStore,
  toAutosaveJson,
  validatePluginRecord,
} from "./store.ts";
