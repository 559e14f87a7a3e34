/**
 * Running jobs for the controller: one run of a job (REST, CLI, RPC) and the RPC channel
 * `PREFIX:RUN` (job-rpc.ts) that exposes a started job.
 */
import type { Logger } from "pino";
import type { JobHistory } from "../compat/job-history.ts";
import { JOB_RPC_SUFFIX, type JobRpcPort, replyOf, runParameters } from "./job-rpc.ts";
import type { LoadedPlugin } from "./plugin.ts";
import type { JobResultJson, OpResult } from "./types.ts";

/** Registers the channel; its removal goes with the plugin's unsubs. No port: not exposed. */
export function exposeJob(
  port: JobRpcPort | undefined,
  p: LoadedPlugin,
  log: Logger,
  runJob: (name: string, parameters: Record<string, unknown>) => Promise<OpResult<JobResultJson>>,
): void {
  const status = p.pvs.get("STATUS")?.pv.name;
  if (!port || status === undefined) return;
  const channel = `${p.prefix}:${JOB_RPC_SUFFIX}`;
  const off = port.register(
    channel,
    async (call) => {
      const parameters = runParameters(p.parameters, call.args);
      log.info(
        { plugin: p.name, peer: call.peer, user: call.user, args: Object.keys(parameters) },
        `job ${p.name} run by RPC`,
      );
      // By name, as REST does: a job removed or restarted since is not this closure's `p`.
      return replyOf(await runJob(p.name, parameters));
    },
    status,
  );
  p.unsubs.push(off);
}

/** Runs job `p` once (409 already running or being removed); the result joins its history. */
export async function runJobOnce(
  p: LoadedPlugin,
  history: JobHistory,
  parameters: Record<string, unknown> | undefined,
): Promise<OpResult<JobResultJson>> {
  if (p.jobBusy) return { ok: false, code: 409, message: `job ${p.name} is already running` };
  if (p.stopped) return { ok: false, code: 409, message: `job ${p.name} is being removed` };
  p.jobBusy = true;
  try {
    const r = await p.host.request(
      parameters === undefined ? { t: "runJob" } : { t: "runJob", parameters },
    );
    if (!r.ok) return { ok: false, code: 500, message: r.message };
    const result = r.data as JobResultJson;
    history.add(p.name, result);
    return { ok: true, message: result.message, value: result };
  } finally {
    p.jobBusy = false;
  }
}
