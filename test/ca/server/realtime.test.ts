/**
 * With IOCMNG_RT_PRIORITY=N `iocmng serve` runs its CA threads (main thread, CA search thread)
 * SCHED_FIFO as rsrv does when the process may (src/common/realtime.ts), and nothing it starts
 * inherits it: plugin processes (the spare here) and the runtime's other threads stay ordinary.
 * Unset or 0: ordinary scheduling; a bad value stops the start naming the variable. And a plugin
 * process's threads all take the sandbox's nice value (per thread on Linux). Where the test runs without the privilege
 * (not root, no CAP_SYS_NICE) the server must still start and say why it is not real-time.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  DEFAULT_RT_PRIORITY,
  rtPriorityFromEnv,
  threadPolicy,
} from "../../../src/common/realtime.ts";
import { ConfigError } from "../../../src/config-error.ts";
import { DEFAULT_LIMITS } from "../../../src/plugins/host/sandbox.ts";
import {
  makeDirs,
  type ServerDirs,
  spawnServer,
  startProcess,
  waitFor,
} from "../../e2e/lib/server.ts";

setDefaultTimeout(90_000);

const SCHED_FIFO = 1;

describe("rtPriorityFromEnv", () => {
  test("unset or empty: off (0); 0/no/off/false: off; 1..99 as given", () => {
    expect(rtPriorityFromEnv({})).toBe(DEFAULT_RT_PRIORITY);
    expect(DEFAULT_RT_PRIORITY).toBe(0);
    expect(rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: " " })).toBe(0);
    for (const off of ["0", "no", "OFF", "false"])
      expect(rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: off })).toBe(0);
    expect(rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: "1" })).toBe(1);
    expect(rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: "99" })).toBe(99);
  });

  test("anything else is a configuration error naming the variable", () => {
    for (const bad of ["100", "-1", "1.5", "yes", "high", "0x10"]) {
      expect(() => rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: bad })).toThrow(ConfigError);
      expect(() => rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: bad })).toThrow(/IOCMNG_RT_PRIORITY/);
    }
  });
});

/** Threads of `pid` by name with their policy. */
function threads(pid: number): Array<{ tid: number; comm: string; policy: number }> {
  return readdirSync(`/proc/${pid}/task`).map((t) => ({
    tid: Number(t),
    comm: readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim(),
    policy: threadPolicy(pid, Number(t)),
  }));
}

/** Processes whose parent is `pid`. */
function children(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(d));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** True when this process may use SCHED_FIFO (root or CAP_SYS_NICE in its effective set). */
function mayRealtime(): boolean {
  const cap = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
  return cap !== undefined && (BigInt(`0x${cap}`) & (1n << 23n)) !== 0n;
}

describe("iocmng serve", () => {
  let dirs: ServerDirs;
  // The spare plugin process is what these tests look at: asked for explicitly, whatever the default.
  let spareOn: Record<string, string>;
  beforeAll(async () => {
    dirs = await makeDirs();
    const file = join(dirs.root, "spare.yaml");
    writeFileSync(file, "sandbox:\n  spare: true\n");
    spareOn = { IOCMNG_CONFIG: file };
  });
  afterAll(async () => {
    await dirs.remove();
  });

  test("IOCMNG_RT_PRIORITY=1: CA threads real-time when permitted, the spare plugin process and other threads not", async () => {
    const s = await spawnServer(dirs, { env: { ...spareOn, IOCMNG_RT_PRIORITY: "1" } });
    try {
      const pid = s.proc.pid;
      // The spare plugin process starts right after the server listens.
      const spare = await waitFor("a plugin process (the spare)", () => children(pid).at(0));
      const own = threads(pid);
      const main = own.find((t) => t.tid === pid);
      const fifo = own.filter((t) => t.policy === SCHED_FIFO);
      if (mayRealtime()) {
        expect(main?.policy).toBe(SCHED_FIFO);
        expect(s.output()).toContain("CA server threads real-time (SCHED_FIFO)");
        // The main thread and the CA search Worker; the PVA search Worker, GC, JIT and the
        // allocator's threads stay ordinary.
        await waitFor(
          "the CA search thread real-time",
          () => threads(pid).filter((t) => t.policy === SCHED_FIFO).length === 2 || undefined,
        );
        const rt = threads(pid).filter((t) => t.policy === SCHED_FIFO);
        expect(rt.map((t) => t.comm).sort()).toEqual(["Worker", main?.comm ?? ""].sort());
      } else {
        expect(fifo).toEqual([]);
        expect(s.output()).toContain("CA server threads not real-time: not permitted");
      }
      // Plugin code never runs real-time: SCHED_RESET_ON_FORK gave the child ordinary scheduling.
      for (const t of threads(spare)) expect(t.policy).toBe(0);
    } finally {
      await s.kill();
    }
  });

  test("unset or IOCMNG_RT_PRIORITY=0: every thread ordinary, nothing logged about it", async () => {
    const envs: Array<Record<string, string>> = [{}, { IOCMNG_RT_PRIORITY: "0" }];
    for (const env of envs) {
      const s = await spawnServer(dirs, { env });
      try {
        expect(threads(s.proc.pid).filter((t) => t.policy !== 0)).toEqual([]);
        expect(s.output()).not.toContain("real-time");
      } finally {
        await s.kill();
      }
    }
  });

  test("a plugin process runs every thread at the sandbox's nice, not only its main thread", async () => {
    const s = await spawnServer(dirs, { env: spareOn });
    try {
      const spare = await waitFor("a plugin process (the spare)", () => children(s.proc.pid).at(0));
      // Its runtime's threads (allocator scavenger, JIT workers…) exist before the sandbox sets
      // the nice value; on Linux it is per thread, so each one must have been set.
      const nices = await waitFor("the spare confined", () => {
        const n = readdirSync(`/proc/${spare}/task`).map((t) => {
          const stat = readFileSync(`/proc/${spare}/task/${t}/stat`, "utf8");
          return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
        });
        return n.some((x) => x === DEFAULT_LIMITS.nice) ? n : undefined;
      });
      expect(nices.length).toBeGreaterThan(1);
      expect(new Set(nices)).toEqual(new Set([DEFAULT_LIMITS.nice]));
    } finally {
      await s.kill();
    }
  });

  test("a bad IOCMNG_RT_PRIORITY stops the start with the variable's name", async () => {
    const p = await startProcess(dirs, { env: { IOCMNG_RT_PRIORITY: "fast" } });
    const code = await p.proc.exited;
    expect(code).not.toBe(0);
    expect(p.output()).toContain("IOCMNG_RT_PRIORITY must be a SCHED_FIFO priority 1..99");
  });
});
