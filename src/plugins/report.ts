/**
 * The pipeline's report: each step records success with a short message, the first failure ends
 * the pipeline with a StepError naming its step. What REST returns as `validation` and what
 * `iocmng validate` prints.
 */
import { errorMessage } from "../common/errors.ts";
import type { PipelineStep, ValidationReport, ValidationStep } from "./types.ts";

/** A failure of one pipeline step, with an operator-readable message. */
export class StepError extends Error {
  constructor(
    readonly step: PipelineStep,
    message: string,
  ) {
    super(message);
    this.name = "StepError";
  }
}

/** Told of each step as it is recorded (the console's live progress of an add). */
export type StepObserver = (step: ValidationStep) => void;

/** Records pipeline steps; `fail` ends the pipeline with a StepError. */
export class Steps {
  readonly steps: ValidationStep[] = [];
  constructor(private readonly observer?: StepObserver) {}
  ok(step: PipelineStep, message: string): void {
    this.record({ step, ok: true, message });
  }
  private record(s: ValidationStep): void {
    this.steps.push(s);
    try {
      this.observer?.(s);
    } catch {
      // An observer's bug must not fail the plugin's pipeline.
    }
  }
  fail(step: PipelineStep, message: string): never {
    throw new StepError(step, message);
  }
  /** The report: valid without `err`; else `err`'s step ("internal" for a non-step error) failed. */
  report(err?: unknown): ValidationReport {
    if (err === undefined) {
      return { ok: true, message: "plugin is valid", steps: this.steps };
    }
    const step: string = err instanceof StepError ? err.step : "internal";
    const message = errorMessage(err);
    this.record({ step, ok: false, message });
    return { ok: false, failedStep: step, message: `${step}: ${message}`, steps: this.steps };
  }
}
