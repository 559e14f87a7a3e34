/** Public types of the plugin runtime (the contract the REST layer and the CLI code against). */

/** A request to add a plugin: one schema, in src/common/add-request.ts. */
export type { AddRequest } from "../common/add-request.ts";

/** One step of the validation pipeline. */
export interface ValidationStep {
  step: string;
  ok: boolean;
  message: string;
}

/** Outcome of the validation pipeline; `failedStep` names the first failing step. */
export interface ValidationReport {
  ok: boolean;
  failedStep?: string;
  message: string;
  steps: ValidationStep[];
}

/** A PV of a plugin with its current value. */
export interface PluginPvInfo {
  name: string;
  fullName: string;
  kind: string;
  writable: boolean;
  value: unknown;
  status: number;
  severity: number;
}

/** What the REST API shows about a plugin. */
export interface PluginInfo {
  name: string;
  kind: "task" | "job";
  mode?: "continuous" | "triggered";
  status: string;
  message: string;
  cycleCount?: number;
  prefix: string;
  git_url: string;
  branch?: string;
  path?: string;
  parameters: Record<string, unknown>;
  pvs: PluginPvInfo[];
  running: boolean;
  /** Why the plugin is quarantined (its process failed too often); absent when it is not. */
  quarantined?: string;
}

/** Result of a controller operation: `code` is the HTTP status the REST layer should use. */
export type OpResult<T = undefined> =
  | { ok: true; message: string; value: T; validation?: ValidationReport }
  | {
      ok: false;
      code: 400 | 404 | 409 | 422 | 500;
      message: string;
      validation?: ValidationReport;
    };

/** A job result as JSON. */
export interface JobResultJson {
  success: boolean;
  data: unknown;
  message: string;
  timestamp: string;
}

/** Names of the pipeline steps, in order. */
export const PIPELINE_STEPS = [
  "request",
  "clone",
  "path",
  "config",
  "dependencies",
  "syntax",
  "import",
  "inheritance",
  "abstract",
  "pvs",
  "start",
] as const;
/** A pipeline step name. */
export type PipelineStep = (typeof PIPELINE_STEPS)[number];
