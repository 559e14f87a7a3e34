/**
 * What a plugin process is allowed: its limits, the user it runs as, the environment it starts
 * with, and the command line that starts it. Pure data and small helpers; the process itself is
 * driven by process-host.ts, the child side applies the settings in entry.ts (see docs/security.md).
 */
import { chmod, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { allocatorEnvFor } from "../../common/allocator.ts";

/** Per-plugin resource limits (rlimits of the plugin process). */
export interface SandboxLimits {
  /** RLIMIT_DATA in MiB: heap, buffers and every private writable mapping. */
  memoryMiB: number;
  /** RLIMIT_NOFILE: open files and sockets. */
  openFiles: number;
  /** RLIMIT_NPROC: processes + threads of the plugin's uid (per uid, see docs/security.md). */
  processes: number;
  /** Nice value 0..19 (higher = lower CPU priority than the server). */
  nice: number;
  /** RLIMIT_CPU in seconds of CPU time, 0 = unlimited. */
  cpuSeconds: number;
}

/** The operator's sandbox settings (server config file `sandbox:`). */
export interface SandboxConfig {
  /** Defaults for every plugin. */
  limits: SandboxLimits;
  /** Ceilings for the per-plugin overrides of config.yaml (`limits:`). */
  maxLimits: SandboxLimits;
  /** uid/gid of plugin processes when the server runs as root (null: same as the server). */
  uid: number | null;
  gid: number | null;
  /** Extra variables passed to plugin processes (names only; values from the server's env). */
  passEnv: string[];
  /** Keep one plugin process started ahead of need for the next add (spare.ts). */
  spare: boolean;
}

/** Smallest RLIMIT_DATA a plugin process starts under (measured, docs/benchmarks.md). */
export const MIN_MEMORY_MIB = 320;

/**
 * The JIT's executable-memory reservation of a plugin process. Bun reserves ~2 GiB of address
 * space for JIT code by default, which RLIMIT_DATA counts: under any useful limit JSC then starts
 * with the JIT off, and bun:ffi (libca for `this.ca`) refuses to run without the JIT. 64 MiB of
 * JIT code is far more than a plugin needs.
 */
export const JIT_RESERVATION_BYTES = 64 << 20;

export const DEFAULT_LIMITS: SandboxLimits = {
  memoryMiB: 512,
  openFiles: 1024,
  processes: 4096,
  nice: 5,
  cpuSeconds: 0,
};

export const DEFAULT_MAX_LIMITS: SandboxLimits = {
  memoryMiB: 4096,
  openFiles: 65536,
  processes: 65536,
  nice: 0,
  cpuSeconds: 0,
};

/** The default user of plugin processes under root: nobody/nogroup. */
export const DEFAULT_PLUGIN_UID = 65534;

export function defaultSandboxConfig(): SandboxConfig {
  return {
    limits: { ...DEFAULT_LIMITS },
    maxLimits: { ...DEFAULT_MAX_LIMITS },
    uid: DEFAULT_PLUGIN_UID,
    gid: DEFAULT_PLUGIN_UID,
    passEnv: [],
    spare: true,
  };
}

/**
 * Effective limits of one plugin: the operator's defaults, overridden by the plugin's config.yaml
 * `limits:`, each capped by the operator's ceiling (a plugin cannot raise its own limits beyond
 * what the operator allows; nice can only be made nicer).
 */
export function effectiveLimits(
  cfg: SandboxConfig,
  wanted: Partial<SandboxLimits> | undefined,
): SandboxLimits {
  const out = { ...cfg.limits, ...(wanted ?? {}) };
  const max = cfg.maxLimits;
  const cap = (v: number, m: number): number => (m > 0 ? Math.min(v, m) : v);
  return {
    memoryMiB: Math.max(MIN_MEMORY_MIB, cap(out.memoryMiB, max.memoryMiB)),
    openFiles: Math.max(64, cap(out.openFiles, max.openFiles)),
    processes: Math.max(64, cap(out.processes, max.processes)),
    nice: Math.min(19, Math.max(out.nice, max.nice, 0)),
    cpuSeconds:
      max.cpuSeconds > 0 ? cap(out.cpuSeconds || max.cpuSeconds, max.cpuSeconds) : out.cpuSeconds,
  };
}

/** Variables every plugin process gets from the server's environment when set (by prefix or name). */
export const PASSED_ENV_PREFIXES = ["EPICS_"] as const;
export const PASSED_ENV_NAMES = [
  "TZ",
  "LANG",
  "LC_ALL",
  "IOCMNG_LIBCA",
  "LD_LIBRARY_PATH",
] as const;

/** Never passed, whatever the operator lists: the API token and our own git variables. */
export const NEVER_PASSED = new Set(["IOCMNG_API_TOKEN", "IOCMNG_GIT_TOKEN"]);

/**
 * The whole environment of a plugin process: nothing of the server's but EPICS_*, a few locale
 * variables and what the operator lists in `sandbox.pass_env` (minus the API token and every
 * variable named as a `pat_env`), plus HOME/TMPDIR pointing at its private directory and the
 * server's allocator settings.
 */
export function pluginEnv(
  from: Record<string, string | undefined>,
  opts: { home: string; passEnv: readonly string[]; hidden: readonly string[] },
): Record<string, string> {
  const hidden = new Set([...NEVER_PASSED, ...opts.hidden]);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(from)) {
    if (v === undefined || hidden.has(k)) continue;
    if (
      PASSED_ENV_PREFIXES.some((p) => k.startsWith(p)) ||
      (PASSED_ENV_NAMES as readonly string[]).includes(k) ||
      opts.passEnv.includes(k)
    ) {
      env[k] = v;
    }
  }
  env.HOME = opts.home;
  env.TMPDIR = opts.home;
  env.PATH = "/usr/local/bin:/usr/bin:/bin";
  env.NO_COLOR = "1";
  env.BUN_JSC_jitMemoryReservationSize = String(JIT_RESERVATION_BYTES);
  // The server's allocator settings (src/common/allocator.ts): a plugin's periodic work would
  // otherwise have its scavenger thread give pages back and refault them every cycle.
  Object.assign(env, allocatorEnvFor(from));
  // Bun's small-heap mode (`--smol`; BUN_OPTIONS reaches the compiled executable too): the JS heap
  // is collected sooner; a few MB less PSS for plugins holding thousands of PVs, no CPU cost we
  // could measure (docs/benchmarks.md, "Plugins in sandboxed processes"). Passed options follow.
  env.BUN_OPTIONS = env.BUN_OPTIONS ? `--smol ${env.BUN_OPTIONS}` : "--smol";
  return env;
}

/** Settings handed to the plugin-host mode on its command line (nothing secret in here). */
export interface HostArgs {
  /** Plugin name (logs, process title). */
  name: string;
  /** Server pid: the host exits if its parent is already gone when it starts. */
  parent: number;
  uid: number | null;
  gid: number | null;
  limits: SandboxLimits;
  /** Private writable directory (cwd, HOME, TMPDIR). */
  home: string;
  /** The pids cgroup the host joins first (cgroup.ts); null: RLIMIT_NPROC instead. */
  cgroup: string | null;
  /**
   * The memory cgroup (cgroup.ts), joined by the shell wrapper before Bun starts so that all of
   * the process's memory is charged to it (and again by the host, for a start without a shell).
   */
  memoryCgroup: string | null;
}

/** The hidden subcommand of the executable that runs one plugin (src/main.ts dispatches it). */
export const HOST_COMMAND = "__plugin-host";

/** True when running from the `bun build --compile` executable (the entry lives in /$bunfs). */
export function isCompiled(): boolean {
  return Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
}

/** argv that runs this same program (the binary, or `bun src/main.ts` from the sources). */
export function selfCommand(): string[] {
  return isCompiled()
    ? [process.execPath]
    : [process.execPath, fileURLToPath(new URL("../../main.ts", import.meta.url))];
}

/**
 * Directories a plugin process under another uid must reach to run the program itself: none for
 * the compiled executable (its code is inside it); from the sources, the source tree (with its
 * node_modules) and the directory of the Bun binary. A checkout under a 0700 directory (mktemp -d)
 * is otherwise unreadable to the plugin's uid and every plugin fails at import.
 */
export function runtimeDirs(): string[] {
  if (isCompiled()) return [];
  return [fileURLToPath(new URL("../../..", import.meta.url)), dirname(process.execPath)];
}

/**
 * argv that re-executes this same program in plugin-host mode. The memory limit is set by
 * `/bin/sh -c 'ulimit -d …; exec …'` because it must hold before Bun starts (a limit set later
 * is below what the engine already reserved, and the next allocation aborts); the shell also joins
 * the memory cgroup first (a process's memory is charged where it was allocated). Every other
 * limit is set by the host itself. Without /bin/sh the host runs without the memory rlimit
 * (logged) and joins the memory cgroup itself, late.
 */
export function hostArgv(args: HostArgs, shell: string | null): string[] {
  const cmd = [...selfCommand(), HOST_COMMAND, JSON.stringify(args)];
  if (!shell) return cmd;
  const kib = args.limits.memoryMiB * 1024;
  const limit = `ulimit -d ${kib} && exec "$@"`;
  if (args.memoryCgroup === null) return [shell, "-c", limit, "iocmng-plugin", ...cmd];
  // The path goes as an argument, never into the script text.
  const join = `echo $$ > "$1" || { echo "cannot join the memory cgroup" >&2; exit 78; }; shift`;
  const procs = `${args.memoryCgroup}/cgroup.procs`;
  return [shell, "-c", `${join}; ${limit}`, "iocmng-plugin", procs, ...cmd];
}

/** /bin/sh when present (our image ships dash for git), else null. */
export async function findShell(): Promise<string | null> {
  return (await stat("/bin/sh").then(
    (s) => s.isFile(),
    () => false,
  ))
    ? "/bin/sh"
    : null;
}

/**
 * A plugin process running as another uid must be able to reach its code: adds the search bit
 * (o+x, never read) to `dir` and each ancestor that lacks it, so the files inside (0644) can be
 * opened by path. Directory listings stay closed to it. Returns the directories changed.
 */
export async function makeTraversable(dir: string): Promise<string[]> {
  const changed: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    const s = await stat(d).catch(() => null);
    if (s && (s.mode & 0o001) === 0) {
      await chmod(d, (s.mode & 0o7777) | 0o001).catch(() => {});
      changed.push(d);
    }
    if (dirname(d) === d) break;
  }
  return changed;
}
