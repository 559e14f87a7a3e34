import { afterAll, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { DEFAULT_LIMITS } from "../../src/plugins/host/sandbox.ts";
import { makeRepo, type TestRepo } from "../helpers/git-e2e.ts";
import { COUNTER_TASK } from "./lib/plugins.ts";
import { makeDirs, type ServerDirs, spawnServer, waitFor } from "./lib/server.ts";

/**
 * `iocmng serve` puts its main thread (CA, PVA, REST) at SCHED_FIFO 18 where the host permits it,
 * as an EPICS IOC runs its server threads (docs/ca-server.md §Scheduling); every other thread of
 * the server and every plugin process stays at normal priority, and IOCMNG_RT_PRIORITY=0 turns it
 * off. Read from /proc as `chrt -p` shows it.
 */
const repos: TestRepo[] = [];
const allDirs: ServerDirs[] = [];
afterAll(async () => {
  await Promise.all(repos.map((r) => r.remove()));
  await Promise.all(allDirs.map((d) => d.remove()));
});

/** [policy, rt_priority] of thread `tid` of `pid` (proc(5) stat fields 41 and 40). */
function sched(pid: number, tid: number | string): [number, number] {
  const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return [Number(f[38]), Number(f[37])];
}

/** Every thread of `pid` that is not SCHED_OTHER, as [tid, policy, priority]. */
function raisedThreads(pid: number): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [pol, prio] = sched(pid, t);
      if (pol !== 0) out.push([Number(t), pol, prio]);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/** Every process whose chain of parents leads to `root`. */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const s = readFileSync(`/proc/${n}/stat`, "utf8");
      parent.set(Number(n), Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // Gone.
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p))
      if (p === root) return true;
    return false;
  };
  return [...parent.keys()].filter(below);
}

async function serverWithPlugin(env: Record<string, string>, name: string) {
  const d = await makeDirs();
  allDirs.push(d);
  const srv = await spawnServer(d, { env });
  try {
    const r = await makeRepo(COUNTER_TASK);
    repos.push(r);
    const add = await srv.api("POST", "/tasks", { name, git_url: r.url });
    expect(add.status).toBe(201);
    // The plugin host (and the spare, if one runs): every process below the server.
    const plugins = await waitFor("the plugin process", () => {
      const d = descendants(srv.proc.pid);
      return d.length > 0 ? d : undefined;
    });
    return { srv, plugins };
  } catch (e) {
    // A failed set-up must not leave a server (and its plugin) running after the test.
    await srv.kill("SIGKILL");
    throw e;
  }
}

test("serve: the main thread at SCHED_FIFO 18 when permitted, plugins and other threads normal", async () => {
  const { srv, plugins } = await serverWithPlugin({}, "rtcount");
  try {
    const pid = srv.proc.pid;
    if (sched(pid, pid)[0] === 1) {
      expect(sched(pid, pid)).toEqual([1, 18]);
      expect(srv.output()).toContain("CA/PVA server thread at SCHED_FIFO");
      // Only the main thread: the search Workers, JSC's and Bun's helper threads stay normal.
      expect(raisedThreads(pid)).toEqual([[pid, 1, 18]]);
    } else {
      // Not permitted on this host (no root, CAP_SYS_NICE or RLIMIT_RTPRIO): said once, serves on.
      expect(srv.output()).toContain("real-time priority refused by the OS");
      expect(raisedThreads(pid)).toEqual([]);
    }
    // A plugin never runs at a real-time priority, whatever the server got.
    for (const p of plugins) expect(raisedThreads(p)).toEqual([]);
    expect((await srv.api("GET", "/health")).status).toBe(200);
  } finally {
    await srv.kill("SIGKILL");
  }
}, 120_000);

test("a plugin process runs every thread at the sandbox's nice value, not only its main thread", async () => {
  const { srv, plugins } = await serverWithPlugin({}, "nicecount");
  try {
    // The runtime's threads (allocator scavenger, JIT workers…) exist before the sandbox sets the
    // nice value, and on Linux it is per thread: each one must have been set (ffi/libc.ts setNice).
    // Read from the Bun process below the /bin/sh wrapper: the one with more than one thread.
    const nices = await waitFor("a confined plugin process", () => {
      for (const pid of plugins) {
        const n = readdirSync(`/proc/${pid}/task`).map((t) => {
          const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
          return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
        });
        if (n.length > 1 && n.includes(DEFAULT_LIMITS.nice)) return n;
      }
      return undefined;
    });
    expect(new Set(nices)).toEqual(new Set([DEFAULT_LIMITS.nice]));
  } finally {
    await srv.kill("SIGKILL");
  }
}, 120_000);

test("serve: IOCMNG_RT_PRIORITY=0 keeps every thread at normal priority; a bad value stops the start", async () => {
  const { srv } = await serverWithPlugin({ IOCMNG_RT_PRIORITY: "0" }, "rtoff");
  try {
    expect(raisedThreads(srv.proc.pid)).toEqual([]);
    expect(srv.output()).not.toContain("SCHED_FIFO");
  } finally {
    await srv.kill("SIGKILL");
  }
  const d = await makeDirs();
  allDirs.push(d);
  await expect(spawnServer(d, { env: { IOCMNG_RT_PRIORITY: "high" } })).rejects.toThrow(
    /IOCMNG_RT_PRIORITY="high": expected 0 \(off\) or a priority 1\.\.99/,
  );
}, 120_000);
