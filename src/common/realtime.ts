/**
 * Real-time scheduling, on request (IOCMNG_RT_PRIORITY), for the threads that answer Channel Access
 * (the server's main thread and its search thread), as EPICS gives its CA server threads whenever
 * the process may have it.
 *
 * Why: on Linux an EPICS IOC started by root (or with CAP_SYS_NICE / RLIMIT_RTPRIO) runs its
 * threads SCHED_FIFO — softIoc's CAS-TCP at 16, CAS-UDP at 12, a circuit's CAS-client thread at 20,
 * the scan threads at 59–66 — so its replies preempt every ordinary (SCHED_OTHER) process: the
 * machine's other work, and here our own plugin processes and runtime helper threads (allocator
 * scavenger, GC, JIT). Traced with `perf sched` on a 2-core machine, the slow gets of
 * scripts/bench/ca-p99.ts were mostly ones where the server's main thread, woken by the request,
 * waited 50 µs–2 ms for a CPU that a plugin process, a helper thread or another session held,
 * while softIoc's thread never waits; and under load softIoc's warm connect storm is ~1.3–1.5×
 * slower when it is denied these priorities (docs/ca-server.md, "Scheduling"). Whether iocmng
 * should do the same by default is open (DEFAULT_RT_PRIORITY below).
 *
 * SCHED_RESET_ON_FORK goes with it: whatever the thread starts afterwards — plugin processes
 * (hostile code must never run real-time) and new threads (Workers, GC and JIT helpers) — starts as
 * an ordinary SCHED_OTHER task. A thread that should be real-time too calls {@link enterRealtime}
 * itself (the CA search Worker does).
 */
import { existsSync, readFileSync } from "node:fs";
import { ConfigError } from "../config-error.ts";

/**
 * Off unless asked for. Measured on a 2-core machine shared with other work (docs/ca-server.md,
 * "Scheduling"), neither priority was a clear gain: at 20 (rsrv's circuit threads) the server
 * preempted a local libca client's own real-time threads on every request and took a few requests
 * per wake-up — its CPU per 10,000-channel connect storm went from ~35 to 55–75 ms; at 1 (above
 * every ordinary process, not above such a client) the CPU stayed at ~35 ms and the worst gets
 * under load improved (p99 median of 30 runs 718 vs 865 µs at load 7) but the typical get got
 * slower (p50 116 vs 80 µs). Worth trying where an IOC shares its host with heavy ordinary work.
 */
export const DEFAULT_RT_PRIORITY = 0;

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;
const SCHED_RESET_ON_FORK = 0x40000000;

/** IOCMNG_RT_PRIORITY: 1–99 (SCHED_FIFO priority); unset, 0/no/off/false: not real-time. */
export function rtPriorityFromEnv(env: Record<string, string | undefined>): number {
  const raw = env.IOCMNG_RT_PRIORITY?.trim();
  if (raw === undefined || raw === "") return DEFAULT_RT_PRIORITY;
  if (/^(no|off|false)$/i.test(raw)) return 0;
  if (/^\d+$/.test(raw) && Number(raw) <= 99) return Number(raw);
  throw new ConfigError(
    `IOCMNG_RT_PRIORITY must be a SCHED_FIFO priority 1..99, or 0/no/off/false, got '${raw}'`,
  );
}

interface Libc {
  sched_setscheduler(pid: number, policy: number, param: unknown): number;
}

let libc: Libc | null | undefined;
let toPtr: ((b: Int32Array) => unknown) | undefined;

/** libc's sched_setscheduler through bun:ffi, loaded on first use (null where there is none). */
async function loadLibc(): Promise<Libc | null> {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== "linux") return null;
  try {
    const ffi = await import("bun:ffi");
    const lib = ffi.dlopen("libc.so.6", {
      sched_setscheduler: {
        args: [ffi.FFIType.i32, ffi.FFIType.i32, ffi.FFIType.ptr],
        returns: ffi.FFIType.i32,
      },
    });
    toPtr = (b) => ffi.ptr(b);
    libc = lib.symbols as unknown as Libc;
  } catch {
    // No glibc (musl builds name it differently) or no FFI: stay ordinary.
  }
  return libc;
}

/**
 * Makes the calling thread SCHED_FIFO at `priority` with SCHED_RESET_ON_FORK. Resolves with null
 * when done, else why not (not permitted: not root, no CAP_SYS_NICE, RLIMIT_RTPRIO too low).
 */
export async function enterRealtime(priority: number): Promise<string | null> {
  const c = await loadLibc();
  if (c === null || toPtr === undefined) return "sched_setscheduler is not available here";
  const param = new Int32Array([priority]);
  const rc = c.sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, toPtr(param));
  return rc === 0 ? null : "not permitted (needs root, CAP_SYS_NICE or RLIMIT_RTPRIO)";
}

/** The scheduling policy of thread `tid` of process `pid` (0 SCHED_OTHER, 1 SCHED_FIFO, …). */
export function threadPolicy(pid: number, tid: number = pid): number {
  const file = `/proc/${pid}/task/${tid}/sched`;
  if (!existsSync(file)) return SCHED_OTHER;
  const m = /^policy\s*:\s*(\d+)/m.exec(readFileSync(file, "utf8"));
  return m ? Number(m[1]) : SCHED_OTHER;
}
