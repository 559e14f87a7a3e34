import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The server's run directory: its plugins' private directories and the list of children it
 * started (`hosts`), so the next boot after a crash can kill what they left (reap.ts).
 */
export function runRoot(): string {
  return join(tmpdir(), `iocmng-run-${process.pid}`);
}
