/**
 * PluginController: the plugin runtime's front door (REST and CLI call it). Work in progress: the
 * exported signatures are final; the implementation lands next.
 */
import type { Logger } from "pino";
import type { ServerConfig } from "../config.ts";
import type { PvRegistry } from "../pv/registry.ts";
import type { StateStore } from "../state/index.ts";
import type { AddRequest, JobResultJson, OpResult, PluginInfo, ValidationReport } from "./types.ts";

export type {
  AddRequest,
  JobResultJson,
  OpResult,
  PluginInfo,
  PluginPvInfo,
  ValidationReport,
  ValidationStep,
} from "./types.ts";

/** Dependencies of the controller. */
export interface ControllerDeps {
  registry: PvRegistry;
  config: ServerConfig;
  state: StateStore;
  logger: Logger;
}

const notYet = { ok: false, code: 500, message: "plugin runtime not implemented yet" } as const;

/** Loads, runs and removes plugins; owns their workers and PVs. */
export class PluginController {
  constructor(private readonly deps: ControllerDeps) {}

  /** Full pipeline; persists the record on success (409 name taken, 422 validation, 400 input). */
  async add(_req: AddRequest): Promise<OpResult<PluginInfo>> {
    return notYet;
  }
  /** Stops and removes a plugin; ends within 2 s even for a hung plugin. */
  async remove(_kind: "task" | "job", _name: string): Promise<OpResult> {
    return notYet;
  }
  /** Plugins of one kind. */
  list(_kind: "task" | "job"): PluginInfo[] {
    return [];
  }
  /** One plugin, or undefined. */
  get(_kind: "task" | "job", _name: string): PluginInfo | undefined {
    return undefined;
  }
  /** Runs a job once (404 unknown, 409 already running). */
  async runJob(_name: string): Promise<OpResult<JobResultJson>> {
    return notYet;
  }
  /** Re-clones and reloads a task; PV values are kept. */
  async restart(_name: string): Promise<OpResult<PluginInfo>> {
    return notYet;
  }
  /** Boot: plugins from state (on-disk clones) and from config.plugins. */
  async restore(): Promise<void> {
    this.deps.logger.debug("plugin restore: runtime not implemented yet");
  }
  /** Stops every plugin (cleanup()) and removes their PVs. */
  async shutdown(): Promise<void> {}
}

/** The validation pipeline without a server (for `iocmng validate`). */
export async function validatePluginSource(_src: {
  dir?: string;
  git_url?: string;
  branch?: string;
  path?: string;
  kind?: "task" | "job";
}): Promise<ValidationReport & { kind?: "task" | "job" }> {
  return { ok: false, message: "not implemented yet", steps: [] };
}
