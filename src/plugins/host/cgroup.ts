/**
 * Cgroups per plugin process, where the host lets us create them:
 *
 * - **pids** (`pids.max`): RLIMIT_NPROC counts every process and thread of a uid, and all plugins
 *   share one uid, so it cannot bound one plugin; `pids.max` does, and `cgroup.procs` lists
 *   everything the plugin started, even what left its process group or session, so removal kills
 *   it all.
 * - **memory** (`memory.max`, v1 `memory.limit_in_bytes`): RLIMIT_DATA bounds each process's
 *   private mappings; the memory cgroup bounds what the plugin really holds — resident memory of
 *   the host and of every process it starts, tmpfs files and page cache it creates. Its OOM kill
 *   is reported as the memory limit (docs/security.md).
 *
 * cgroup v2 when our own cgroup is delegated to us (its cgroup.subtree_control can enable the
 * controller), else the v1 hierarchy: `pids` at its root, `memory` under our own memory cgroup (so
 * a container's limit still covers the plugins), both writable by root only. No cgroup: the
 * rlimits and the /proc tree walk (reap.ts) are what is left.
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
import { alive } from "./proc.ts";

const V1_ROOT = "/sys/fs/cgroup";

/** The cgroup v2 mount: the unified hierarchy, or its mount point on a hybrid host; null if none. */
function v2Root(): string | null {
  for (const d of [V1_ROOT, join(V1_ROOT, "unified")]) {
    if (existsSync(join(d, "cgroup.controllers"))) return d;
  }
  return null;
}

function write(file: string, text: string): boolean {
  try {
    writeFileSync(file, text);
    return true;
  } catch {
    return false;
  }
}

function read(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function members(dir: string): number[] {
  return read(join(dir, "cgroup.procs"))
    .split("\n")
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 0);
}

/** Our own cgroup path in hierarchy `which` ("" for v2's "0::", else a v1 controller name). */
function ownPath(which: string): string | null {
  for (const line of read("/proc/self/cgroup").split("\n")) {
    const [, ctl, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (path === undefined || ctl === undefined) continue;
    if (which === "" ? ctl === "" : ctl.split(",").includes(which)) return path;
  }
  return null;
}

/** Where this server creates plugin cgroups, per controller (the same directory under v2). */
interface Bases {
  pids: string | null;
  memory: string | null;
  /** Memory via cgroup v2 (memory.max, memory.events) rather than v1. */
  memoryV2: boolean;
}

let bases: Bases | undefined;

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

/** v2: `<own cgroup>/iocmng-<pid>` with whichever of pids and memory we may enable, or null. */
function v2Base(name: string): { dir: string; pids: boolean; memory: boolean } | null {
  const own = ownPath("");
  const root = v2Root();
  if (own === null || root === null) return null;
  const parent = join(root, own);
  const ctl = read(join(parent, "cgroup.controllers"));
  const want = ["pids", "memory"].filter((c) => new RegExp(`\\b${c}\\b`).test(ctl));
  if (want.length === 0) return null;
  const dir = join(parent, name);
  if (!tryMake(dir)) return null;
  const on = want.filter((c) => write(join(dir, "cgroup.subtree_control"), `+${c}`));
  if (on.length === 0) {
    tryRemove(dir);
    return null;
  }
  return { dir, pids: on.includes("pids"), memory: on.includes("memory") };
}

/** The directories under which this server creates plugin cgroups (null: none available). */
export function cgroupBases(): Bases {
  if (bases !== undefined) return bases;
  const name = `iocmng-${process.pid}`;
  const v2 = v2Base(name);
  bases = {
    pids: v2?.pids ? v2.dir : null,
    memory: v2?.memory ? v2.dir : null,
    memoryV2: v2?.memory === true,
  };
  if (bases.pids === null && existsSync(join(V1_ROOT, "pids", "cgroup.procs"))) {
    const dir = join(V1_ROOT, "pids", name);
    if (tryMake(dir)) bases.pids = dir;
  }
  const ownMemory = bases.memory === null ? ownPath("memory") : null;
  if (ownMemory !== null && existsSync(join(V1_ROOT, "memory", "cgroup.procs"))) {
    const dir = join(V1_ROOT, "memory", ownMemory, name);
    if (tryMake(dir)) bases.memory = dir;
  }
  if (bases.pids !== null || bases.memory !== null) process.once("exit", removeOwnCgroup);
  return bases;
}

/** One plugin's cgroups (one directory under v2, up to two under v1). */
export class PluginCgroup {
  private constructor(
    /** The pids cgroup, or null (then RLIMIT_NPROC). */
    readonly pidsDir: string | null,
    /** The memory cgroup, or null (then RLIMIT_DATA alone). */
    readonly memoryDir: string | null,
    private readonly memoryV2: boolean,
  ) {}

  /** Creates what the host allows with `pids.max` and the memory limit; null when nothing. */
  static create(id: string, maxPids: number, memoryMiB: number): PluginCgroup | null {
    const b = cgroupBases();
    let pids: string | null = b.pids === null ? null : join(b.pids, id);
    if (pids !== null && !(tryMake(pids) && write(join(pids, "pids.max"), String(maxPids)))) {
      tryRemove(pids);
      pids = null;
    }
    let memory: string | null = b.memory === null ? null : join(b.memory, id);
    if (memory !== null && !(tryMake(memory) && setMemoryLimit(memory, memoryMiB, b.memoryV2))) {
      if (memory !== pids) tryRemove(memory);
      memory = null;
    }
    if (pids === null && memory === null) return null;
    return new PluginCgroup(pids, memory, b.memoryV2);
  }

  /** Every directory the plugin host joins. */
  get dirs(): string[] {
    return [...new Set([this.pidsDir, this.memoryDir].filter((d): d is string => d !== null))];
  }

  /**
   * Which limit the plugin hit, if any: "processes" when a fork failed at pids.max (the "max"
   * counter of pids.events), "memory" when the kernel OOM-killed one of its processes.
   */
  hitLimit(): "processes" | "memory" | null {
    if (this.memoryDir !== null && this.oomKilled()) return "memory";
    if (this.pidsDir !== null && /max\s+[1-9]/.test(read(join(this.pidsDir, "pids.events")))) {
      return "processes";
    }
    return null;
  }

  /** True once the memory cgroup's OOM killer killed a member (v2 memory.events, v1 oom_control). */
  private oomKilled(): boolean {
    const dir = this.memoryDir as string;
    const text = read(join(dir, this.memoryV2 ? "memory.events" : "memory.oom_control"));
    const kills = /^oom_kill\s+(\d+)/m.exec(text);
    // Kernels before 4.13 have no v1 oom_kill counter: a cgroup stuck at its limit says so.
    return kills ? Number(kills[1]) > 0 : /^under_oom\s+1/m.test(text);
  }

  /** Kills every member, round after round (a forking member may add one), then removes it. */
  destroy(): void {
    for (const d of this.dirs) killAll(d);
  }
}

/** Sets the memory limit of cgroup `dir`, swap included where the host accounts it. */
function setMemoryLimit(dir: string, mib: number, v2: boolean): boolean {
  const bytes = String(mib * 1024 * 1024);
  if (v2) {
    if (!write(join(dir, "memory.max"), bytes)) return false;
    // No swapping past the limit (absent without swap accounting).
    if (existsSync(join(dir, "memory.swap.max"))) write(join(dir, "memory.swap.max"), "0");
    return true;
  }
  if (!write(join(dir, "memory.limit_in_bytes"), bytes)) return false;
  if (existsSync(join(dir, "memory.memsw.limit_in_bytes"))) {
    write(join(dir, "memory.memsw.limit_in_bytes"), bytes);
  }
  return true;
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

/** Boot: kills and removes the plugin cgroups of servers that are gone; returns processes killed. */
export function reapStaleCgroups(): number {
  let killed = 0;
  const parents = [join(V1_ROOT, "pids")];
  const v2 = ownPath("");
  const root = v2Root();
  if (v2 !== null && root !== null) parents.push(join(root, v2));
  const mem = ownPath("memory");
  if (mem !== null) parents.push(join(V1_ROOT, "memory", mem));
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

/** Removes this server's (empty) cgroup directories at exit. */
export function removeOwnCgroup(): void {
  if (bases?.pids) tryRemove(bases.pids);
  if (bases?.memory && bases.memory !== bases.pids) tryRemove(bases.memory);
}
