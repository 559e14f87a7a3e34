/**
 * A pids cgroup per plugin process, where the host lets us create one: cgroup v2 when our own
 * cgroup is delegated to us (its cgroup.subtree_control can enable "pids"), else the v1 "pids"
 * hierarchy (/sys/fs/cgroup/pids, writable by root). Why: RLIMIT_NPROC counts every process and
 * thread of a uid, and all plugins share one uid, so it cannot bound one plugin; `pids.max` of a
 * cgroup does, and `cgroup.procs` lists everything the plugin started, even what left its process
 * group or session, so removal kills it all. No cgroup available: the rlimit and the /proc tree
 * walk (reap.ts) are what is left (docs/security.md).
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

const V1_PIDS = "/sys/fs/cgroup/pids";
const V2_ROOT = "/sys/fs/cgroup";

function write(file: string, text: string): boolean {
  try {
    writeFileSync(file, text);
    return true;
  } catch {
    return false;
  }
}

function members(dir: string): number[] {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8")
      .split("\n")
      .map(Number)
      .filter((p) => Number.isInteger(p) && p > 0);
  } catch {
    return [];
  }
}

let base: string | null | undefined;

/** The directory under which this server creates plugin cgroups, or null when it cannot. */
export function cgroupBase(): string | null {
  if (base !== undefined) return base;
  base = null;
  const name = `iocmng-${process.pid}`;
  // v2: our own cgroup ("0::/path"), if we may create children with the pids controller.
  try {
    const line = readFileSync("/proc/self/cgroup", "utf8")
      .split("\n")
      .find((l) => l.startsWith("0::"));
    const own = line ? join(V2_ROOT, line.slice(3)) : null;
    if (own && existsSync(join(own, "cgroup.controllers"))) {
      const ctl = readFileSync(join(own, "cgroup.controllers"), "utf8");
      const dir = join(own, name);
      if (
        /\bpids\b/.test(ctl) &&
        tryMake(dir) &&
        write(join(dir, "cgroup.subtree_control"), "+pids")
      ) {
        base = dir;
        return base;
      }
      tryRemove(dir);
    }
  } catch {
    // No v2 for us.
  }
  if (existsSync(join(V1_PIDS, "cgroup.procs"))) {
    const dir = join(V1_PIDS, name);
    if (tryMake(dir)) {
      base = dir;
      process.once("exit", removeOwnCgroup);
    }
  }
  return base;
}

function tryMake(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    return true;
  } catch {
    return false;
  }
}

function tryRemove(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Busy or gone.
  }
}

/** One plugin's cgroup. */
export class PluginCgroup {
  private constructor(readonly dir: string) {}

  /** Creates the cgroup with `pids.max`; null when cgroups are not available to us. */
  static create(id: string, maxPids: number): PluginCgroup | null {
    const b = cgroupBase();
    if (!b) return null;
    const dir = join(b, id);
    if (!tryMake(dir)) return null;
    if (!write(join(dir, "pids.max"), String(maxPids))) {
      tryRemove(dir);
      return null;
    }
    return new PluginCgroup(dir);
  }

  /** Moves `pid` (the plugin host, before it runs plugin code) into the cgroup. */
  add(pid: number): boolean {
    return write(join(this.dir, "cgroup.procs"), String(pid));
  }

  /** True when a fork failed because pids.max was reached (the "max" counter of pids.events). */
  hitLimit(): boolean {
    try {
      return /max\s+[1-9]/.test(readFileSync(join(this.dir, "pids.events"), "utf8"));
    } catch {
      return false;
    }
  }

  /** Kills every member, round after round (a forking member may add one), then removes it. */
  destroy(): void {
    killAll(this.dir);
  }
}

function killAll(dir: string): void {
  for (let round = 0; round < 50; round++) {
    const pids = members(dir);
    if (pids.length === 0) break;
    for (const p of pids) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
  }
  // rmdir fails while killed members are still exiting: retry briefly, synchronously.
  for (let i = 0; i < 100 && existsSync(dir); i++) {
    tryRemove(dir);
    if (existsSync(dir)) Bun.sleepSync(5);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Boot: kills and removes the plugin cgroups of servers that are gone; returns processes killed. */
export function reapStaleCgroups(): number {
  let killed = 0;
  const parents = [V1_PIDS];
  try {
    const line = readFileSync("/proc/self/cgroup", "utf8")
      .split("\n")
      .find((l) => l.startsWith("0::"));
    if (line) parents.push(join(V2_ROOT, line.slice(3)));
  } catch {
    // No cgroup v2 entry.
  }
  for (const parent of parents) {
    let names: string[] = [];
    try {
      names = readdirSync(parent);
    } catch {
      continue;
    }
    for (const n of names) {
      const m = /^iocmng-(\d+)$/.exec(n);
      if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
      const dir = join(parent, n);
      let kids: string[] = [];
      try {
        kids = readdirSync(dir, { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => d.name);
      } catch {
        continue;
      }
      for (const k of kids) {
        killed += members(join(dir, k)).length;
        killAll(join(dir, k));
      }
      killAll(dir);
    }
  }
  return killed;
}

/** Removes this server's (empty) cgroup directory at exit. */
export function removeOwnCgroup(): void {
  if (base) tryRemove(base);
}
