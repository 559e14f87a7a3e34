/** Running a helper program (git, the dependency installer) with a hard time limit. */

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
  opts: { env: Record<string, string | undefined>; cwd?: string; signal?: AbortSignal },
  timeoutMs: number,
): Promise<BoundedRun> {
  const proc = Bun.spawn(argv, {
    // Its own process group, so a kill reaches the helpers it starts too (git runs
    // git-remote-https, which would otherwise keep the pipes open and the run waiting).
    detached: true,
    env: opts.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
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
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { out, err, code, timedOut };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", abort);
  }
}
