/**
 * A job's run as a remote procedure call (pvAccess RPC, `pvxcall PREFIX:RUN a=1`). The plugin
 * runtime knows no protocol: it sees only {@link JobRpcPort}, which `src/server.ts` fills with the
 * PVA server's RPC registry. The controller registers a job's channel when the job has started and
 * the unregister function joins the plugin's `unsubs`, so removal, restart and a failed pipeline
 * take the channel away with the job's PVs (clients see the disconnect).
 */
import type { JobResultJson, OpResult } from "./types.ts";

/** Short name of the RPC channel under the job's prefix: `PREFIX:RUN`. */
export const JOB_RPC_SUFFIX = "RUN";

/** Most arguments one call may pass; more is refused before the job runs. */
export const MAX_RPC_ARGS = 64;

/** What a caller sent: string arguments (the NTURI query) and who called. */
export interface JobRpcCall {
  args: Record<string, string>;
  user: string;
  host: string;
  peer: string;
}

/** The result structure a caller receives. */
export interface JobRpcReply {
  success: boolean;
  message: string;
  timestamp: string;
  /** The job's `data`: a structure when it is an object, else `{ value }`. */
  data: Record<string, unknown>;
}

/** Where the runtime exposes job runs (a protocol server's RPC registry). */
export interface JobRpcPort {
  /**
   * Makes `name` callable; returns the function that takes it away again. `guardPv` is the PV
   * whose WRITE right a caller needs (the job's STATUS, in the plugin's access group): running a
   * job is a write to it, so access security decides who may, as for a CA or PVA put.
   */
  register(
    name: string,
    handler: (call: JobRpcCall) => Promise<JobRpcReply>,
    guardPv: string,
  ): () => void;
}

/** Keys that would reach an object's prototype: never a parameter name. */
const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);

/**
 * The run's parameters: the job's own, overlaid with the call's arguments. An argument arrives as
 * a string; where the job's parameter of that name is a number or a boolean the string must read
 * as one (else the call is refused, naming the argument), so `execute()` sees the types its
 * config declared. Throws with a readable message on bad input; the job then does not run.
 */
export function runParameters(
  base: Record<string, unknown>,
  args: Record<string, string>,
): Record<string, unknown> {
  const names = Object.keys(args);
  if (names.length > MAX_RPC_ARGS) {
    throw new Error(`too many arguments: ${names.length} (at most ${MAX_RPC_ARGS})`);
  }
  const out: Record<string, unknown> = {};
  for (const k of names) {
    if (FORBIDDEN.has(k)) throw new Error(`argument name "${k}" is not allowed`);
    const s = args[k] as string;
    const was = Object.hasOwn(base, k) ? base[k] : undefined;
    if (typeof was === "number") {
      const n = Number(s);
      if (s.trim() === "" || !Number.isFinite(n)) {
        throw new Error(`argument ${k}: expected a number, got "${s.slice(0, 40)}"`);
      }
      out[k] = n;
    } else if (typeof was === "boolean") {
      if (!/^(true|false|1|0)$/i.test(s)) {
        throw new Error(`argument ${k}: expected true or false, got "${s.slice(0, 40)}"`);
      }
      out[k] = /^(true|1)$/i.test(s);
    } else out[k] = s;
  }
  return out;
}

/** The reply structure from a run's outcome; a run that could not happen throws its reason. */
export function replyOf(r: OpResult<JobResultJson>): JobRpcReply {
  if (!r.ok) throw new Error(r.message);
  const { success, message, timestamp, data } = r.value;
  const obj =
    data !== null && typeof data === "object" && !Array.isArray(data)
      ? (data as Record<string, unknown>)
      : { value: data ?? "" };
  return { success, message, timestamp, data: obj };
}
