/**
 * What to do when a plugin's process ends unexpectedly: restart it after an exponentially growing
 * delay (per its `restart:` policy), or quarantine it when it failed too often within a window, so
 * a plugin that crashes at every start can neither crash-loop the boot nor burn the CPU.
 */
import type { RestartPolicy } from "../config.ts";

/** Tunables (tests shorten them). */
export interface RestartTimings {
  /** First restart delay; doubles with each failure in the window. */
  restartBaseMs: number;
  restartMaxMs: number;
  /** Failures within `quarantineWindowMs` that quarantine the plugin. */
  quarantineAfter: number;
  quarantineWindowMs: number;
}

export const DEFAULT_RESTART_TIMINGS: RestartTimings = {
  restartBaseMs: 1000,
  restartMaxMs: 60_000,
  quarantineAfter: 5,
  quarantineWindowMs: 10 * 60_000,
};

export type RestartDecision =
  | { action: "none" }
  | { action: "restart"; delayMs: number }
  | { action: "quarantine"; reason: string };

/**
 * Records a failure at `now` in `history` (times of earlier failures, pruned to the window) and
 * decides. `failed`: a crash, a kill or a non-zero exit (exit 0 is a clean end).
 */
export function decideRestart(
  policy: RestartPolicy,
  failed: boolean,
  history: number[],
  now: number,
  t: RestartTimings,
): RestartDecision {
  if (policy === "never" || (policy === "on-failure" && !failed)) return { action: "none" };
  const recent = history.filter((at) => now - at < t.quarantineWindowMs);
  recent.push(now);
  history.splice(0, history.length, ...recent);
  if (recent.length >= t.quarantineAfter) {
    const minutes = Math.round(t.quarantineWindowMs / 60_000);
    return {
      action: "quarantine",
      reason: `quarantined: ${recent.length} failures in ${minutes > 0 ? `${minutes} min` : `${t.quarantineWindowMs} ms`}`,
    };
  }
  const delayMs = Math.min(t.restartMaxMs, t.restartBaseMs * 2 ** (recent.length - 1));
  return { action: "restart", delayMs };
}
