/**
 * A loaded plugin as the runtime holds it (its host, its PVs, its flags), the time limits of the
 * runtime, and what the pipeline needs to know to load one.
 */
import type { DeclarativeSpec } from "../declarative/spec.ts";
import type { Pv } from "../pv/pv.ts";
import type { PvValue } from "../pv/types.ts";
import type { RestartPolicy } from "./config.ts";
import { DEFAULT_RESTART_TIMINGS, type RestartTimings } from "./host/restart.ts";
import type { SandboxLimits } from "./host/sandbox.ts";
import type { PluginHost } from "./host.ts";

/** Time limits of the runtime (tests shorten some). */
export interface RuntimeTimings extends RestartTimings {
  /** Importing the plugin's modules in its host. */
  importTimeoutMs: number;
  /** The plugin's initialize(). */
  initTimeoutMs: number;
  /** cleanup() on remove/shutdown; the host is terminated right after. */
  cleanupTimeoutMs: number;
  /** Missing heartbeats for this long → STATUS ERROR "unresponsive". */
  watchdogMs: number;
  /** A client write waiting for onPvWrite (ENABLE, inputs); RUN waits as long as execute(). */
  writeTimeoutMs: number;
  /** git clone. */
  cloneTimeoutMs: number;
  /** Dependency installation. */
  installTimeoutMs: number;
  /** A spare process no add asked for this long ends (default: spare.ts's SPARE_IDLE_MS). */
  spareIdleMs?: number;
}

/** Defaults: removal completes within 2 s (1.2 s for cleanup, then terminate). */
export const DEFAULT_TIMINGS: RuntimeTimings = {
  ...DEFAULT_RESTART_TIMINGS,
  importTimeoutMs: 30_000,
  initTimeoutMs: 30_000,
  cleanupTimeoutMs: 1200,
  watchdogMs: 3000,
  writeTimeoutMs: 30_000,
  cloneTimeoutMs: 120_000,
  installTimeoutMs: 300_000,
};

/** One PV of a plugin. */
export interface PluginPv {
  short: string;
  pv: Pv;
  autosave: boolean;
  /** Created by the plugin with addPv (not declared). */
  runtime?: boolean;
  /** A new process of the plugin may addPv it again and gets the existing PV. */
  adoptable?: boolean;
}

/** What the pipeline needs to know about the plugin to load. */
export interface LoadSpec {
  name: string;
  kind: "task" | "job";
  git_url: string;
  branch?: string;
  path?: string;
  /** The parameter overrides given at add time (what is persisted). */
  overrides: Record<string, unknown>;
  auto_start: boolean;
  pat?: string;
  pat_env?: string;
  addedAt: string;
}

/** A plugin the pipeline has loaded (or is loading). */
export interface LoadedPlugin extends LoadSpec {
  mode: "continuous" | "triggered";
  /** The plugin class (from the load step), as 2.7.9's `class_name`. */
  className?: string;
  /** A 2.7.9 declarative task's spec (links, rules, transforms; its mode may be reactive). */
  declarative?: DeclarativeSpec;
  interval: number;
  prefix: string;
  /** Effective parameters (config.yaml + overrides). */
  parameters: Record<string, unknown>;
  cloneDir: string;
  pluginDir: string;
  host: PluginHost;
  pvs: Map<string, PluginPv>;
  unsubs: Array<() => void>;
  /** Autosaved values read at load, for PVs created later with addPv. */
  autosaved: Record<string, unknown>;
  /** STATUS/MESSAGE before the watchdog overwrote them. */
  beforeWatchdog: { status: PvValue; message: PvValue } | null;
  triggerBusy: boolean;
  jobBusy: boolean;
  stopped: boolean;
  /** Set when start failed during a restore: loaded for inspection, not running. */
  startError?: string;
  /** Limits of its process (config.yaml `limits:` within the operator's ceilings). */
  limits: SandboxLimits;
  restart: RestartPolicy;
  /** Times of recent unexpected ends of its process (restart backoff, quarantine). */
  failures: number[];
  /** Set when quarantined: not restarted, not started at boot, until a REST restart. */
  quarantined?: string;
  respawnTimer?: ReturnType<typeof setTimeout>;
  /** Entry files (a respawn of its process imports them again). */
  files: string[];
  /** Access security group of its PVs (config.yaml `access.asg`), also for PVs added at runtime. */
  asg?: string;
}

/** Where a plugin comes from: the fields shared by requests, records and loaded plugins. */
export type PluginSource = Pick<
  LoadSpec,
  "name" | "kind" | "git_url" | "branch" | "path" | "pat_env"
>;

/** The source fields of `src`, optional ones only when set. */
export function sourceOf(src: {
  name: string;
  kind: "task" | "job";
  git_url: string;
  branch?: string | undefined;
  path?: string | undefined;
  pat_env?: string | undefined;
}): PluginSource {
  return {
    name: src.name,
    kind: src.kind,
    git_url: src.git_url,
    ...(src.branch !== undefined ? { branch: src.branch } : {}),
    ...(src.path !== undefined ? { path: src.path } : {}),
    ...(src.pat_env ? { pat_env: src.pat_env } : {}),
  };
}

/** A LoadSpec from where a plugin comes from (REST request, record, loaded plugin). */
export function loadSpec(
  src: Parameters<typeof sourceOf>[0],
  rest: Pick<LoadSpec, "overrides" | "auto_start" | "addedAt"> & { pat?: string | undefined },
): LoadSpec {
  return {
    ...sourceOf(src),
    overrides: rest.overrides,
    auto_start: rest.auto_start,
    ...(rest.pat ? { pat: rest.pat } : {}),
    addedAt: rest.addedAt,
  };
}
