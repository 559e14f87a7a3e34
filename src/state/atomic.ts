/**
 * Crash-safe file replacement: after a crash (even SIGKILL or power loss once the kernel has the
 * data) the file holds either the complete old content or the complete new one, never a mix.
 */
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

let tmpCounter = 0;

/** Prefix of temporary files written by atomicWriteFile (stale ones may be removed at boot). */
export const TMP_MARKER = ".tmp-";

/** Name of the temporary file used for `path` (same directory, so rename stays atomic). */
function tmpPathFor(path: string): string {
  tmpCounter = (tmpCounter + 1) % 1_000_000_000;
  return join(dirname(path), `.${basename(path)}${TMP_MARKER}${process.pid}-${tmpCounter}`);
}

/** Fsyncs a directory so a rename in it survives power loss; ignored where unsupported. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Some filesystems (and Windows) cannot fsync a directory; the rename is still atomic there.
    if (code !== "EINVAL" && code !== "EISDIR" && code !== "EPERM" && code !== "EBADF") throw e;
  } finally {
    await fh?.close().catch(() => {});
  }
}

/**
 * Replaces `path` atomically: writes a temporary file in the same directory, fsyncs it, renames it
 * over `path`, then fsyncs the directory. On failure the temporary file is removed and `path` is
 * untouched.
 */
export async function atomicWriteFile(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = tmpPathFor(path);
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(tmp, "wx", 0o600);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fsyncDir(dirname(path));
}
