/**
 * The PV list file of 2.7.9's `iocmng-run --pvout PATH`, which the ChannelFinder feeder reads
 * (`<pvlist_dir>/<ioc>/pvlist.txt`): one full PV name per line, sorted by plain string order
 * (upper case before lower case), a trailing newline, parent directories created.
 */
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/** The file's text for `names` (full PV names). */
export function pvListText(names: Iterable<string>): string {
  const sorted = [...new Set(names)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted.length === 0 ? "" : `${sorted.join("\n")}\n`;
}

/** Writes the list atomically (a reader never sees half a file). */
export async function writePvList(path: string, names: Iterable<string>): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, pvListText(names));
  await rename(tmp, path);
}
