/**
 * Real-time scheduling for the thread that serves the protocols (the main thread), as EPICS IOCs
 * get it: EPICS Base runs its server threads SCHED_FIFO whenever the OS permits (root,
 * CAP_SYS_NICE or RLIMIT_RTPRIO), e.g. pvxs's softIocPVX serves TCP at FIFO 18. On a busy host a
 * SCHED_OTHER thread woken by a request can wait milliseconds behind other runnable threads —
 * other processes', and our own process's helpers (JSC's GC and block warm-up, mimalloc's
 * scavenger) — which was most of our GET round-trip p99 beside softIocPVX's (docs/pva.md
 * §Scheduling, docs/benchmarks.md). A FIFO thread preempts them when it wakes.
 *
 * Only the calling thread changes (Linux keeps the policy per thread), and SCHED_RESET_ON_FORK
 * makes every thread and process created afterwards (Workers, JSC helpers started later, plugin
 * hosts) start at SCHED_OTHER, so a plugin can never inherit a real-time priority.
 */
import type { Logger } from "pino";
import { SCHED_FIFO, SCHED_RESET_ON_FORK, setScheduler } from "../../ffi/libc.ts";

/** What the last request did: granted, refused by the OS (errno), or not asked (0). */
export type RealtimeState =
  | { state: "off" }
  | { state: "fifo"; priority: number }
  | { state: "refused"; priority: number; errno: number };

let current: RealtimeState = { state: "off" };

/**
 * What `iocmng serve` asks for when IOCMNG_RT_PRIORITY is unset: the priority softIocPVX's TCP
 * thread runs at. Only the process's main thread gets it; a host that does not permit it (no root,
 * CAP_SYS_NICE or RLIMIT_RTPRIO, e.g. most containers) serves at normal priority, as an EPICS IOC
 * does. `startServer` used as a library defaults to 0 so a test runner's thread is never raised
 * by accident.
 */
export const DEFAULT_RT_PRIORITY = 18;

/** Largest priority accepted (SCHED_FIFO's range is 1..99). */
export const MAX_RT_PRIORITY = 99;

/**
 * IOCMNG_RT_PRIORITY: 0 / NO = off, 1..99 = SCHED_FIFO at that priority; undefined when unset.
 * Throws with the variable's name on anything else (a typo fails at start).
 */
export function rtPriorityFromEnv(env: Record<string, string | undefined>): number | undefined {
  const raw = env.IOCMNG_RT_PRIORITY?.trim();
  if (raw === undefined || raw === "") return undefined;
  if (/^(no|n|false|off)$/i.test(raw)) return 0;
  const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > MAX_RT_PRIORITY) {
    throw new Error(
      `IOCMNG_RT_PRIORITY=${JSON.stringify(raw)}: expected 0 (off) or a priority 1..${MAX_RT_PRIORITY}`,
    );
  }
  return n;
}

/**
 * Puts the calling thread at SCHED_FIFO `priority` (reset on fork). Idempotent: a second call with
 * the same priority returns the first result; a higher priority is applied, a lower one ignored (two
 * servers in one process share the thread). Never throws: a refusal is returned for the caller to
 * log, and the thread goes on at its normal priority.
 */
function requestRealtime(priority: number): RealtimeState {
  if (priority <= 0) return current;
  if (current.state !== "off" && current.priority >= priority) return current;
  const errno = setScheduler(SCHED_FIFO | SCHED_RESET_ON_FORK, priority);
  current = errno === 0 ? { state: "fifo", priority } : { state: "refused", priority, errno };
  return current;
}

/**
 * {@link requestRealtime} and one log line saying what the OS answered (`what` names the caller);
 * nothing when `priority` is 0.
 */
export function raiseServingThread(priority: number, logger: Logger, what: string): RealtimeState {
  if (priority <= 0) return current;
  const rt = requestRealtime(priority);
  if (rt.state === "fifo") {
    logger.info({ priority: rt.priority }, `${what} thread at SCHED_FIFO`);
  } else if (rt.state === "refused") {
    logger.info(
      { priority: rt.priority, errno: rt.errno },
      "real-time priority refused by the OS (needs root, CAP_SYS_NICE or RLIMIT_RTPRIO); serving at normal priority",
    );
  }
  return rt;
}
