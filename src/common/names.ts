/**
 * Names and state lists every layer agrees on (REST, config file, state file, CLI, SDK, PVs).
 * A leaf module: it imports nothing, so anything may import it.
 */

/** Plugin names as the Python iocmng accepts them; also safe as a PV name segment and a dir name. */
export const PLUGIN_NAME_PATTERN = "^[A-Za-z0-9_-]{1,128}$";
/** {@link PLUGIN_NAME_PATTERN} as a RegExp. */
export const PLUGIN_NAME_RE = new RegExp(PLUGIN_NAME_PATTERN);

/** Environment variable names (for `pat_env`). */
export const ENV_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";

/** States of a task's STATUS PV, in enum order. */
export const TASK_STATES = ["INIT", "RUN", "PAUSED", "END", "ERROR"] as const;
/** States of a job's STATUS PV, in enum order. */
export const JOB_STATES = ["IDLE", "RUNNING", "SUCCESS", "FAILED"] as const;
