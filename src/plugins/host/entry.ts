/**
 * The plugin-host mode of the executable (`iocmng __plugin-host '<json>'`, started only by the
 * server): locks this process down, then runs the plugin runtime (../worker.ts) talking to the
 * server over the IPC channel Bun.spawn opened. Everything here happens before any plugin code is
 * imported, so the plugin starts already confined: limits set, privileges dropped, non-dumpable,
 * killed with the server.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  dropPrivileges,
  getppid,
  PR_SET_CHILD_SUBREAPER,
  PR_SET_NO_NEW_PRIVS,
  PR_SET_PDEATHSIG,
  prctl,
  RLIMIT,
  setNice,
  setNonDumpable,
  setrlimit,
  setThreadName,
} from "../../../ffi/libc.ts";
import type { HostArgs } from "./sandbox.ts";

const SIGKILL = 9;

function die(message: string): never {
  process.stderr.write(`iocmng plugin host: ${message}\n`);
  process.exit(78);
}

/** Applies the sandbox; exits (code 78) when a mandatory step fails. */
export function confine(a: HostArgs): void {
  if (typeof process.send !== "function") die("no IPC channel: started by hand?");
  // The cgroups first, before this process starts anything: all it and the plugin start is
  // counted (the shell wrapper already put it in the memory cgroup; joining again is a no-op).
  for (const dir of new Set([a.cgroup, a.memoryCgroup])) {
    if (dir === null) continue;
    try {
      writeFileSync(join(dir, "cgroup.procs"), String(process.pid));
    } catch (e) {
      die(`cannot join the cgroup ${dir}: ${e instanceof Error ? e.message : e}`);
    }
  }
  // Limits first, while still privileged (a raised hard limit needs CAP_SYS_RESOURCE).
  const lim = a.limits;
  const set = (what: string, res: number, v: number): void => {
    const e = setrlimit(res, BigInt(v));
    if (e !== 0) die(`setrlimit(${what}, ${v}) failed (errno ${e})`);
  };
  set("NOFILE", RLIMIT.NOFILE, lim.openFiles);
  // RLIMIT_NPROC counts all processes of the uid (every plugin): only when no cgroup bounds this one.
  if (a.cgroup === null) set("NPROC", RLIMIT.NPROC, lim.processes);
  set("CORE", RLIMIT.CORE, 0);
  if (lim.cpuSeconds > 0) set("CPU", RLIMIT.CPU, lim.cpuSeconds);
  if (lim.nice > 0 && setNice(lim.nice) !== 0) die("setpriority failed");
  // setuid binaries (su, sudo, ping…) cannot give the plugin more rights than it has.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1) !== 0) die("prctl(NO_NEW_PRIVS) failed");
  if (a.uid !== null && a.gid !== null) {
    const e = dropPrivileges(a.uid, a.gid);
    if (e !== 0) die(`cannot switch to uid ${a.uid} gid ${a.gid} (errno ${e})`);
  }
  // After the uid switch, which clears the parent-death signal: killed when the server dies.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) !== 0) die("prctl(PDEATHSIG) failed");
  // The server may have died between spawning us and the line above.
  if (getppid() !== a.parent) die("the server is gone");
  // Other plugins (same uid) cannot read this one's memory or environment either.
  setNonDumpable();
  // Processes the plugin starts and abandons stay our descendants, so removing the plugin finds
  // and kills them even when they left the process group (setsid).
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  try {
    process.chdir(a.home);
  } catch {
    die(`cannot enter ${a.home}`);
  }
  // Bun's process.title changes nothing the kernel shows; the thread name is what ps/top list.
  // A spare is renamed after its plugin when it is handed over (worker.ts, start).
  setThreadName(a.name);
}

/** Entry from src/main.ts: `argv` is what follows the hidden subcommand. */
export async function runPluginHost(argv: readonly string[]): Promise<void> {
  let a: HostArgs;
  try {
    a = JSON.parse(argv[0] ?? "") as HostArgs;
  } catch {
    die("bad arguments");
  }
  confine(a);
  await import("../worker.ts");
}
