/**
 * Resource use of a plugin's OS process, read from Linux procfs: CPU time from
 * `/proc/<pid>/stat` (utime + stime, fields 14 and 15, in clock ticks) and the resident set from
 * `/proc/<pid>/statm` (second field, in pages). The console list and /metrics both ask for it, a
 * scrape may come every second, so a reading is cached for {@link CACHE_MS} per pid.
 *
 * Only the plugin's own process is counted (not children it may spawn: the sandbox's process limit
 * keeps those few). A pid that is gone or unreadable (not Linux) reads as null.
 */
import { readFileSync } from "node:fs";

export interface ProcUsage {
  pid: number;
  rssBytes: number;
  cpuSeconds: number;
}

/** How long a reading is reused. */
export const CACHE_MS = 1000;
/**
 * USER_HZ and the page size: the kernel reports stat times in USER_HZ, 100 on every Linux ABI
 * Bun runs on (x86_64, arm64); pages of statm are 4 KiB there.
 */
const TICKS_PER_SECOND = 100;
const PAGE_BYTES = 4096;

const cache = new Map<number, { at: number; usage: ProcUsage | null }>();

/** Parses `/proc/<pid>/stat` and `statm` text; null when malformed. */
export function parseProcUsage(pid: number, stat: string, statm: string): ProcUsage | null {
  // The command name (field 2) is in parentheses and may hold spaces or ')': cut after the last.
  const close = stat.lastIndexOf(")");
  if (close < 0) return null;
  const rest = stat.slice(close + 2).split(" ");
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  const pages = Number(statm.split(" ")[1]);
  if (![utime, stime, pages].every((n) => Number.isFinite(n) && n >= 0)) return null;
  return { pid, rssBytes: pages * PAGE_BYTES, cpuSeconds: (utime + stime) / TICKS_PER_SECOND };
}

/** Resource use of process `pid` now (cached for a second), or null when it cannot be read. */
export function procUsage(pid: number, now = Date.now()): ProcUsage | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const hit = cache.get(pid);
  if (hit !== undefined && now - hit.at < CACHE_MS) return hit.usage;
  let usage: ProcUsage | null = null;
  try {
    usage = parseProcUsage(
      pid,
      readFileSync(`/proc/${pid}/stat`, "utf8"),
      readFileSync(`/proc/${pid}/statm`, "utf8"),
    );
  } catch {
    usage = null;
  }
  // Forget stale pids so the cache stays as small as the set of plugins.
  for (const [p, e] of cache) if (now - e.at >= CACHE_MS) cache.delete(p);
  cache.set(pid, { at: now, usage });
  return usage;
}
