/**
 * Settings of the allocator under Bun (mimalloc), which it reads from the environment once, when
 * the process starts: `iocmng serve` re-executes itself with them set (`reexecWithAllocatorEnv`).
 *
 * `MIMALLOC_PURGE_DELAY`: how long mimalloc keeps freed pages before its `mi-scavenger` thread
 * gives them back to the OS (`madvise`). Its default, 100 ms, is shorter than the gap between a
 * server's bursts of work (a connect storm, a batch of GETs), so each burst meets pages given back
 * after the last one: the serving thread takes a page fault to get each back, and the scavenger
 * thread runs on a CPU the clients need. At 1 s the pages of a busy server stay; an idle one still
 * returns them a second later (docs/benchmarks.md, "Allocator purge delay").
 *
 * `MIMALLOC_PURGE_HOLES_MIN_INTERVAL`: Bun's mimalloc also gives back the free "holes" inside
 * partly used pages, at most every 100 ms by default; a plugin's 10 Hz `setPv` batch then costs a
 * purge and a refault of the same few pages every cycle (strace of the scavenger: the same 12 KiB
 * `madvise`d every 100 ms). Same 1 s.
 */
import { readFileSync } from "node:fs";
import { execvpe } from "../../ffi/libc.ts";

export const ALLOCATOR_ENV: Readonly<Record<string, string>> = {
  MIMALLOC_PURGE_DELAY: "1000",
  MIMALLOC_PURGE_HOLES_MIN_INTERVAL: "1000",
};

/**
 * The allocator settings a child Bun process (a plugin) should start with: the server's own value
 * of each (the user's, or ours after the re-exec), else ours.
 */
export function allocatorEnvFor(
  server: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ALLOCATOR_ENV)) out[k] = server[k] ?? v;
  return out;
}

/**
 * The environment `iocmng serve` should re-execute itself with, or null when nothing is missing:
 * each setting the user has not set (any value the user sets is kept, `MIMALLOC_PURGE_DELAY=100`
 * restores mimalloc's default).
 */
export function allocatorReexecEnv(
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> | null {
  const missing = Object.entries(ALLOCATOR_ENV).filter(([k]) => env[k] === undefined);
  if (missing.length === 0) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  for (const [k, v] of missing) out[k] = v;
  return out;
}

/**
 * Re-executes this process (same pid, arguments, descriptors) with the allocator settings added to
 * its environment, when some are missing. Returns only when nothing was missing or the exec failed
 * (then the server runs on with mimalloc's defaults, and says so on stderr). Call it first thing,
 * before the process has done any work worth keeping.
 */
export function reexecWithAllocatorEnv(): void {
  const env = allocatorReexecEnv(process.env);
  if (env === null) return;
  let argv: string[];
  try {
    // The exact argv the process was started with (process.argv is Bun's rewritten view of it).
    argv = readFileSync("/proc/self/cmdline", "utf8").split("\0");
  } catch {
    return;
  }
  if (argv.at(-1) === "") argv.pop();
  const err = execvpe(argv, env, "/proc/self/exe");
  process.stderr.write(`iocmng: could not re-execute with the allocator settings (errno ${err})\n`);
}
