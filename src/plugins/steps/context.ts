/**
 * The context the pipeline's steps share (what the server provides, where the files come from,
 * what each step leaves for the next) and the shape of a step.
 */
import type { Logger } from "pino";
import type { ServerConfig } from "../../config.ts";
import type { PvRegistry } from "../../pv/registry.ts";
import type { PvValue } from "../../pv/types.ts";
import type { StateStore } from "../../state/index.ts";
import type { PvBridge } from "../bridge.ts";
import type { resolveParameters } from "../config.ts";
import type { PluginConfig } from "../config-schema.ts";
import type { PluginHost, PluginHostFactory } from "../host.ts";
import type { LoadedPlugin, LoadSpec, RuntimeTimings } from "../plugin.ts";
import type { StepError, Steps } from "../report.ts";
import type { ValidationReport } from "../types.ts";

/** What the server gives the pipeline (absent when validating without a server). */
export interface ServerSide {
  config: ServerConfig;
  registry: PvRegistry;
  state: StateStore;
  bridge: PvBridge;
  /** Aborted by shutdown: kills clones and installs in progress. */
  signal: AbortSignal;
  isShuttingDown(): boolean;
  /** Environment variables known to hold git tokens (hidden from plugins). */
  tokenEnvNames(): string[];
  /** Hosts of plugins still in the pipeline: shutdown ends them. */
  loadingHosts: Set<PluginHost>;
  /** Makes a loaded plugin known to the controller (listed, removable). */
  register(p: LoadedPlugin): void;
}

/** Where the plugin's files come from. */
export type PipelineSource =
  /** A fresh clone into the plugins directory (add, restart). */
  | { from: "git" }
  /** The clone already on disk (boot restore, a restart's rollback); no network. */
  | { from: "disk"; cloneDir: string }
  /** A temporary clone, deleted at the end (validate a git URL). */
  | { from: "scratch" }
  /** A local directory used in place (validate a directory). */
  | { from: "dir"; dir: string };

/** Everything the steps share; each step reads what earlier ones set. */
export interface PipelineContext {
  readonly spec: LoadSpec;
  readonly source: PipelineSource;
  /** The kind being checked; `load` may change it when `detectKind` (validate without a kind). */
  kind: "task" | "job";
  readonly detectKind: boolean;
  /** PV values carried across a restart. */
  readonly keep: Map<string, PvValue> | null;
  readonly server: ServerSide | null;
  readonly timings: RuntimeTimings;
  readonly hostFactory: PluginHostFactory;
  readonly steps: Steps;
  readonly log: Logger;
  /** The repository root (clone or local directory). */
  root?: string;
  /** The plugin directory inside it. */
  dir?: string;
  cfg?: PluginConfig;
  resolved?: ReturnType<typeof resolveParameters>;
  host?: PluginHost;
  /** The entry files `load` imported. */
  files?: string[];
  /** The plugin being loaded (server only). */
  plugin?: LoadedPlugin;
  /** Set when start failed during a restore: the plugin stays loaded, not running. */
  degraded?: StepError;
  /** Run newest first when a step fails. */
  readonly undo: Array<() => void | Promise<void>>;
  /** Run at the end whatever happened. */
  readonly always: Array<() => void | Promise<void>>;
}

/** Names of the pipeline's steps (`load` reports as import, inheritance and abstract). */
export type StepName =
  | "clone"
  | "path"
  | "config"
  | "dependencies"
  | "syntax"
  | "load"
  | "pvs"
  | "start";

/** One named step. */
export interface PipelineStepDef {
  readonly name: StepName;
  run(ctx: PipelineContext): Promise<void>;
}

/** The pipeline's result: the report, and the loaded plugin on success. */
export type PipelineOutcome =
  | { ok: true; plugin: LoadedPlugin | undefined; report: ValidationReport }
  | { ok: false; report: ValidationReport };

/** `v`, which an earlier step must have set (a programming error otherwise). */
export function requireSet<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`pipeline: ${what} not set by an earlier step`);
  return v;
}
