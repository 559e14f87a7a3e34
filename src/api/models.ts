import { type Static, t } from "elysia";
import { AddRequestBody, PluginKindSchema, PluginName } from "../common/add-request.ts";

/**
 * TypeBox schemas of every REST request and response. They drive validation and the OpenAPI
 * document; the static types derived from them describe what the controller must provide, so the
 * web layer depends on shapes rather than on the controller's implementation.
 */

/** Body of `POST /tasks` and `POST /jobs`: the add request's one schema, without `kind`. */
export const AddPluginBody = AddRequestBody;
export type AddPluginBody = AddRequestBody;

/** Path parameters of the per-plugin routes. */
export const NameParams = t.Object({ name: PluginName });

/** One step of plugin validation (clone, config, dependencies, syntax, import, …). */
export const ValidationStep = t.Object({
  step: t.String(),
  ok: t.Boolean(),
  message: t.String(),
});

/** What validation found; `failedStep` names the step that refused the plugin. */
export const ValidationReport = t.Object({
  ok: t.Boolean(),
  failedStep: t.Optional(t.String()),
  message: t.String(),
  steps: t.Array(ValidationStep),
});
export type ValidationReport = Static<typeof ValidationReport>;

/** A PV of a plugin with its current value and alarm. */
export const PluginPv = t.Object({
  name: t.String({ description: "Short name, e.g. SETPOINT" }),
  fullName: t.String({ description: "Full CA name, e.g. BL:NS:MY-MONITOR:SETPOINT" }),
  kind: t.String({ description: "double | long | string | enum | char" }),
  writable: t.Boolean(),
  value: t.Unknown({ description: "Number, string, or array of numbers" }),
  status: t.Number({ description: "EPICS alarm status" }),
  severity: t.Number({ description: "EPICS alarm severity (0 none, 1 minor, 2 major, 3 invalid)" }),
});
export type PluginPv = Static<typeof PluginPv>;

/** A loaded plugin as listed by the API. Never contains a token. */
export const PluginInfo = t.Object({
  name: t.String(),
  kind: PluginKindSchema,
  mode: t.Optional(t.Union([t.Literal("continuous"), t.Literal("triggered")])),
  status: t.String(),
  message: t.String(),
  cycleCount: t.Optional(t.Number()),
  prefix: t.String(),
  git_url: t.String(),
  branch: t.Optional(t.String()),
  path: t.Optional(t.String()),
  parameters: t.Record(t.String(), t.Unknown()),
  pvs: t.Array(PluginPv),
  running: t.Boolean(),
  /** Why the plugin is quarantined (its process failed too often); restart it to retry. */
  quarantined: t.Optional(t.String()),
});
export type PluginInfo = Static<typeof PluginInfo>;

/** Answer of every mutating request: `{ok, message, validation?}` as the seed, plus the plugin. */
export const OpResponse = t.Object({
  ok: t.Boolean(),
  message: t.String(),
  validation: t.Optional(ValidationReport),
  plugin: t.Optional(PluginInfo),
});

/** Error answer (any 4xx/5xx): the same shape as `OpResponse` so clients parse one thing. */
export const ErrorResponse = t.Object({
  ok: t.Literal(false),
  message: t.String(),
  validation: t.Optional(ValidationReport),
});
export type ErrorResponse = Static<typeof ErrorResponse>;

/** `GET /tasks`, `GET /jobs`. */
export const PluginList = t.Object({ plugins: t.Array(PluginInfo), count: t.Number() });

/** `GET /tasks/{name}/pvs`, `GET /jobs/{name}/pvs`. */
export const PvList = t.Object({ pvs: t.Array(PluginPv), count: t.Number() });

/** What a job returned. */
export const JobResult = t.Object({
  success: t.Boolean(),
  data: t.Unknown(),
  message: t.String(),
  timestamp: t.String({ description: "ISO 8601" }),
});
export type JobResult = Static<typeof JobResult>;

/** `POST /jobs/{name}/run`: `ok` mirrors `result.success`. */
export const RunResponse = t.Object({ ok: t.Boolean(), message: t.String(), result: JobResult });

/** `GET /health`. */
export const Health = t.Object({
  status: t.String(),
  version: t.String(),
  tasks_count: t.Number(),
  jobs_count: t.Number(),
});
