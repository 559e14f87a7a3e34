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
  opts: { env: Record<string, string | undefined>; cwd?: string },
  timeoutMs: number,
): Promise<BoundedRun> {
  const proc = Bun.spawn(argv, {
    env: opts.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { out, err, code, timedOut };
}
