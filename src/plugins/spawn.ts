/** Running a helper program (git, the dependency installer) with a hard time limit. */
import { closeSync, mkdirSync, writeSync } from "node:fs";
import { recordHost } from "./host/reap.ts";
import { runRoot } from "./host/run-root.ts";

function recordChild(pid: number): void {
  try {
    mkdirSync(runRoot(), { recursive: true, mode: 0o711 });
    recordHost(runRoot(), pid);
  } catch {
    // Best effort.
  }
}

/** What a bounded run produced; `timedOut` means it was killed at the limit. */
export interface BoundedRun {
  out: string;
  err: string;
  code: number;
  timedOut: boolean;
}

/**
 * Spawns `argv` with stdin closed and both outputs captured, and SIGKILLs it after `timeoutMs`
 * (a hung clone or install must not hold up an add or the boot forever).
 */
export async function runBounded(
  argv: string[],
  opts: {
    env: Record<string, string | undefined>;
    cwd?: string;
    signal?: AbortSignal;
    /**
     * Text readable once on the child's file descriptor 3 (a socket pair), then EOF: how a secret
     * reaches a child without its environment or argv, both readable in /proc by its uid.
     */
    fd3?: string;
  },
  timeoutMs: number,
): Promise<BoundedRun> {
  const proc = Bun.spawn(argv, {
    // Its own process group, so a kill reaches the helpers it starts too (git runs
    // git-remote-https, which would otherwise keep the pipes open and the run waiting).
    detached: true,
    env: opts.env,
    stdio: ["ignore", "pipe", "pipe", ...(opts.fd3 !== undefined ? (["pipe"] as const) : [])],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  // Noted in the server's run directory: if the server is killed (-9), the next boot kills what is
  // left of this child (git has no parent-death signal), see host/reap.ts.
  recordChild(proc.pid);
  if (opts.fd3 !== undefined) {
    // Reading stdio[3] makes the fd ours to close. A few hundred bytes fit any socket buffer.
    const fd = proc.stdio[3];
    if (typeof fd === "number") {
      try {
        writeSync(fd, opts.fd3);
      } finally {
        closeSync(fd);
      }
    }
  }
  const killAll = (): void => {
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {
      proc.kill("SIGKILL");
    }
  };
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killAll();
  }, timeoutMs);
  // A server shutdown aborts: the children are killed rather than left running as orphans.
  const abort = killAll;
  if (opts.signal?.aborted) abort();
  opts.signal?.addEventListener("abort", abort, { once: true });
  try {
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout as ReadableStream<Uint8Array>).text(),
      new Response(proc.stderr as ReadableStream<Uint8Array>).text(),
      proc.exited,
    ]);
    return { out, err, code, timedOut };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", abort);
  }
}
