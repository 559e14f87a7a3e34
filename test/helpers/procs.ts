/** Finding processes from /proc in the sandbox tests (what a plugin left behind, say). */
import { readdirSync, readFileSync } from "node:fs";

/** Processes whose command line contains `text` (plugin hosts carry their name in argv). */
export function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      if (readFileSync(`/proc/${n}/cmdline`, "latin1").includes(text)) out.push(Number(n));
    } catch {
      // Gone.
    }
  }
  return out;
}
