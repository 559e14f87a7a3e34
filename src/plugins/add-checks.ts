/** The refusals of an add before any work starts (bad request, refused pat_env, name taken). */
import { type AddRequest, addRequestProblem } from "../common/add-request.ts";
import { PAT_ENV_REFUSED, patEnvAllowed } from "./host/settings.ts";
import type { LoadedPlugin } from "./plugin.ts";
import { StepError, Steps } from "./report.ts";
import type { OpResult } from "./types.ts";

/** What decides whether an add may start. */
export interface AddGate {
  patEnvAllow: string[] | undefined;
  shuttingDown: boolean;
  /** The plugin listed under a name (lower case), if any. */
  existing: (key: string) => LoadedPlugin | undefined;
  /** An add, remove or restart of a name (lower case) is in progress. */
  busy: (key: string) => boolean;
}

/** The failure to return for `req` (400, 409, 422), or null when the add may start. */
export function addRefusal(
  req: AddRequest,
  gate: AddGate,
): Extract<OpResult<never>, { ok: false }> | null {
  const bad = addRequestProblem(req)?.message;
  if (bad) {
    const validation = new Steps().report(new StepError("request", bad));
    return { ok: false, code: 400, message: bad, validation };
  }
  if (req.pat_env !== undefined && !patEnvAllowed(gate.patEnvAllow, req.pat_env)) {
    // 422, and neither the variable's value nor its name comes back (it may be a probe).
    return { ok: false, code: 422, message: PAT_ENV_REFUSED };
  }
  if (gate.shuttingDown) return { ok: false, code: 409, message: "server is shutting down" };
  // Only now: a request that failed the checks above may not even have a string name.
  const key = req.name.toLowerCase();
  const existing = gate.existing(key);
  if (existing || gate.busy(key)) {
    const what = existing
      ? `a ${existing.kind} named "${existing.name}" already exists`
      : `"${req.name}" is being changed right now`;
    return {
      ok: false,
      code: 409,
      message: `name taken: ${what} (names are case-insensitive: PV prefixes are upper case)`,
    };
  }
  return null;
}
