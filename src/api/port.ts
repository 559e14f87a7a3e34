/**
 * What the REST layer needs from the plugin runtime. `PluginController` satisfies it structurally;
 * keeping the port here lets the web layer compile and be read (and tested) on its own.
 */
import type { AddPluginBody, JobResult, PluginInfo, ValidationReport } from "./models.ts";

/** HTTP status codes the controller may ask for when an operation fails. */
type FailureCode = 400 | 404 | 409 | 422 | 500;

/** Outcome of a controller operation (mirrors `OpResult` of src/plugins/types.ts). */
export type ApiResult<T = undefined> =
  | { ok: true; message: string; value: T; validation?: ValidationReport }
  | { ok: false; code: FailureCode; message: string; validation?: ValidationReport };

/** The plugin runtime as the routes see it. */
export interface ControllerPort {
  add(req: AddPluginBody & { kind: "task" | "job" }): Promise<ApiResult<PluginInfo>>;
  remove(kind: "task" | "job", name: string): Promise<ApiResult<unknown>>;
  list(kind: "task" | "job"): PluginInfo[];
  get(kind: "task" | "job", name: string): PluginInfo | undefined;
  runJob(name: string): Promise<ApiResult<JobResult>>;
  restart(name: string): Promise<ApiResult<PluginInfo>>;
}
