/**
 * Boot clean-up of the plugins directory: clone directories that no saved plugin owns (left by a
 * server killed in the middle of an add or a restart) are removed, so a crash loop of adds cannot
 * fill the disk. Layout: `<pluginsDir>/<name>/<clone-id>/`.
 */
import { readdir, rm, rmdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Logger } from "pino";

/** Removes `<pluginsDir>/*\/*` directories no record names as its clone; returns what it removed. */
export async function removeOrphanClones(
  pluginsDir: string,
  records: ReadonlyArray<{ cloneDir: string }>,
  log: Logger,
): Promise<string[]> {
  const owned = new Set(records.map((r) => resolve(r.cloneDir)));
  const removed: string[] = [];
  const names = await readdir(pluginsDir, { withFileTypes: true }).catch(() => []);
  for (const n of names) {
    if (!n.isDirectory()) continue;
    const parent = join(pluginsDir, n.name);
    const clones = await readdir(parent, { withFileTypes: true }).catch(() => []);
    for (const c of clones) {
      const dir = resolve(parent, c.name);
      if (!c.isDirectory() || owned.has(dir)) continue;
      await rm(dir, { recursive: true, force: true }).catch(() => {});
      removed.push(dir);
    }
    // The per-plugin directory itself when nothing is left in it.
    await rmdir(parent).catch(() => {});
  }
  if (removed.length > 0) log.warn({ removed }, "removed clone directories no saved plugin owns");
  return removed;
}
