/**
 * Finding and killing everything a plugin process started, from /proc: its descendants (the host
 * is a child subreaper, so orphans it leaves stay below it), and its session (what survived a
 * crashed host, or a server killed with -9: recorded in the run directory and reaped at the next
 * boot). Linux only, synchronous: /proc reads are fast and the callers are removals and boot.
 */
import { appendFileSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reapStaleCgroups } from "./cgroup.ts";
import { alive } from "./proc.ts";

interface ProcEntry {
  ppid: number;
  sid: number;
}

/** pid → (ppid, session) of every process visible in /proc. */
function scan(): Map<number, ProcEntry> {
  const out = new Map<number, ProcEntry>();
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const n of names) {
    const pid = Number(n);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue;
    }
    // "pid (comm) state ppid pgrp session …": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    out.set(pid, { ppid: Number(fields[1]), sid: Number(fields[3]) });
  }
  return out;
}

function descendants(root: number, table: Map<number, ProcEntry>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, e] of table) {
    const list = children.get(e.ppid);
    if (list) list.push(pid);
    else children.set(e.ppid, [pid]);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

function signal(pid: number, sig: "SIGSTOP" | "SIGKILL"): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone, or not ours.
  }
}

/**
 * Kills `root` and all its descendants. They are stopped first, round after round until no new
 * one appears (a fork loop cannot outrun a stopped parent), then killed: killing the root first
 * would hand its children to init, out of reach.
 */
export function killTree(root: number): void {
  signal(root, "SIGSTOP");
  const seen = new Set<number>();
  for (let round = 0; round < 20; round++) {
    const fresh = descendants(root, scan()).filter((p) => !seen.has(p));
    if (fresh.length === 0) break;
    for (const p of fresh) {
      seen.add(p);
      signal(p, "SIGSTOP");
    }
  }
  for (const p of seen) signal(p, "SIGKILL");
  signal(root, "SIGKILL");
  try {
    process.kill(-root, "SIGKILL");
  } catch {
    // No such group left.
  }
}

/** Live processes whose session is `sid` (a host's session outlives the host). */
export function sessionMembers(sid: number): number[] {
  const out: number[] = [];
  for (const [pid, e] of scan()) if (e.sid === sid && pid !== sid) out.push(pid);
  return out;
}

/** Notes a plugin host's pid in the server's run directory (for the next boot after a crash). */
export function recordHost(runDir: string, pid: number): void {
  try {
    appendFileSync(join(runDir, "hosts"), `${pid}\n`);
  } catch {
    // Best effort: the boot scan then misses only this host's leftovers.
  }
}

/**
 * Boot: for each run directory of a server that is gone, kills what its plugin hosts left (their
 * sessions) and removes the directory. Returns how many processes were killed.
 */
export function reapStaleRuns(root: string = tmpdir()): number {
  let killed = 0;
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return 0;
  }
  for (const n of names) {
    const m = /^iocmng-run-(\d+)$/.exec(n);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    const dir = join(root, n);
    let hosts: number[] = [];
    try {
      hosts = readFileSync(join(dir, "hosts"), "utf8")
        .split("\n")
        .map(Number)
        .filter((p) => Number.isInteger(p) && p > 1);
    } catch {
      // No host ever started.
    }
    const table = scan();
    for (const h of hosts) {
      for (const [pid, e] of table) {
        if (e.sid === h) {
          killTree(pid);
          killed++;
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return killed;
}

/** Boot: what plugin processes of a dead server left (cgroups, then sessions); processes killed. */
export function reapStale(): number {
  return reapStaleCgroups() + reapStaleRuns();
}
