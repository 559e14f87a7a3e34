/**
 * The plugin pipeline: an ordered list of small named steps over one context.
 *
 *   clone → path → config → dependencies → syntax → load → pvs → start
 *
 * `load` reports three lines of the report (import, inheritance, abstract). Adds, restarts and
 * boot restores run every step against the server (see {@link ServerSide}); `iocmng validate` runs
 * the same steps without a server: the `pvs` step creates the PVs in a scratch registry and the
 * pipeline stops before `start`. A failing step throws a StepError naming itself; the runner then
 * undoes, newest first, what earlier steps registered (PVs, host, clone directory), so a failure
 * leaves nothing behind.
 */
import { StepError } from "./report.ts";
import type { PipelineContext, PipelineOutcome, PipelineStepDef } from "./steps/context.ts";
import { load, pvs, start } from "./steps/runtime.ts";
import { clone, config, dependencies, path, syntax } from "./steps/source.ts";

export type {
  PipelineContext,
  PipelineOutcome,
  PipelineSource,
  PipelineStepDef,
  ServerSide,
  StepName,
} from "./steps/context.ts";

/** The steps, in order. */
const PIPELINE: readonly PipelineStepDef[] = [
  clone,
  path,
  config,
  dependencies,
  syntax,
  load,
  pvs,
  start,
];

/** What validation runs: everything up to, not including, `start`. */
const VALIDATION_PIPELINE: readonly PipelineStepDef[] = PIPELINE.slice(0, -1);

/** Runs `steps` over `ctx`; on a failure undoes what earlier steps did, newest first. */
export async function runPipeline(
  ctx: PipelineContext,
  steps: readonly PipelineStepDef[] = ctx.server ? PIPELINE : VALIDATION_PIPELINE,
): Promise<PipelineOutcome> {
  try {
    for (const step of steps) {
      const t0 = performance.now();
      await step.run(ctx);
      // Where an add's time goes (docs/benchmarks.md reads these at debug level).
      ctx.log.debug({ step: step.name, ms: Math.round(performance.now() - t0) }, "step done");
    }
    return { ok: true, plugin: ctx.plugin, report: ctx.steps.report(ctx.degraded) };
  } catch (e) {
    const report = ctx.steps.report(e);
    const { kind, name } = ctx.spec;
    if (!(e instanceof StepError)) ctx.log.error({ err: e }, "plugin pipeline failed unexpectedly");
    else ctx.log.warn({ step: e.step }, `${kind} ${name} not loaded: ${report.message}`);
    for (const u of ctx.undo.reverse()) {
      try {
        await u();
      } catch (err) {
        ctx.log.error({ err }, "undoing a pipeline step failed");
      }
    }
    return { ok: false, report };
  } finally {
    for (const f of ctx.always) await f();
  }
}
