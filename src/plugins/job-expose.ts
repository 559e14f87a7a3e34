/** Exposes a started job as the RPC channel `PREFIX:RUN` (job-rpc.ts) for the controller. */
import type { Logger } from "pino";
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
