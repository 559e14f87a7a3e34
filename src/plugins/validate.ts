/**
 * `iocmng validate` and `iocmng run`'s first check: the plugin pipeline without a server, on a
 * local directory or a git URL (cloned into a temporary directory that is deleted). It runs every
 * step up to `start`: the PVs are made in a scratch registry and nothing is started. Without a
 * `kind`, the plugin's class decides (the `load` step reads config.yaml again for a job).
 */
import type { PluginHostFactory } from "./host.ts";
import { defaultHostFactory } from "./host-default.ts";
import { type PipelineContext, type PipelineSource, runPipeline } from "./pipeline.ts";
import { DEFAULT_TIMINGS, type LoadSpec } from "./plugin.ts";
import { StepError, Steps } from "./report.ts";
import type { ValidationReport } from "./types.ts";

/** What to validate: a directory or a git URL, optionally a sub-directory, branch and kind. */
export interface ValidateInput {
  dir?: string;
  git_url?: string;
  branch?: string;
  path?: string;
  kind?: "task" | "job";
}

/** A validation report with the kind the plugin was checked as. */
export type KindReport = ValidationReport & { kind: "task" | "job" };

/** Validates a plugin source without a server (see the module comment). */
export async function validatePluginSource(
  src: ValidateInput,
  hostFactory: PluginHostFactory = defaultHostFactory,
): Promise<KindReport> {
  const steps = new Steps();
  const kind = src.kind ?? "task";
  let source: PipelineSource;
  if (src.git_url !== undefined) source = { from: "scratch" };
  else if (src.dir !== undefined) source = { from: "dir", dir: src.dir };
  else return { ...steps.report(new StepError("request", "give a directory or a git URL")), kind };
  const spec: LoadSpec = {
    name: "validate",
    kind,
    git_url: src.git_url ?? "",
    ...(src.branch !== undefined ? { branch: src.branch } : {}),
    ...(src.path !== undefined ? { path: src.path } : {}),
    overrides: {},
    auto_start: false,
    addedAt: new Date().toISOString(),
  };
  // Loaded on demand: the CLI's other commands do not need a logger here.
  const { default: pino } = await import("pino");
  const ctx: PipelineContext = {
    spec,
    source,
    kind,
    detectKind: src.kind === undefined,
    keep: null,
    server: null,
    timings: DEFAULT_TIMINGS,
    hostFactory,
    steps,
    log: pino({ level: "silent" }),
    undo: [],
    always: [],
  };
  const r = await runPipeline(ctx);
  return { ...r.report, kind: ctx.kind };
}
