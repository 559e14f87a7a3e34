/**
 * The `start` request of a plugin's process, built in one place for the pipeline's start step
 * and for a respawn after the process ended: the new process must get the same identity,
 * services and declarative spec as the first.
 */
import type { ServerConfig } from "../config.ts";
import type { HostRequest } from "./host.ts";
import type { LoadedPlugin } from "./plugin.ts";
import type { WorkerPvInfo } from "./protocol.ts";

export function startRequest(
  p: LoadedPlugin,
  cfg: ServerConfig,
  pvs: Record<string, WorkerPvInfo>,
  initTimeoutMs: number,
): Extract<HostRequest, { t: "start" }> {
  return {
    t: "start",
    name: p.name,
    kind: p.kind,
    prefix: p.prefix,
    parameters: p.parameters,
    mode: p.mode,
    interval: p.interval,
    // A task starts disabled when ENABLE is 0 (kept across a restart); a job has no ENABLE.
    enabled: p.kind === "task" ? p.pvs.get("ENABLE")?.pv.value !== 0 : true,
    pvs,
    services: {
      beamlineValues: cfg.beamlineValues,
      beamline: cfg.beamline,
      namespace: cfg.namespace,
      devices: !cfg.disableDevices,
    },
    initTimeoutMs,
    ...(p.declarative ? { declarative: p.declarative } : {}),
  };
}
