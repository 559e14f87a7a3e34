import { type Static, t } from "elysia";

/**
 * TypeBox schemas of every REST request and response. They drive validation and the OpenAPI
 * document; the static types derived from them describe what the controller must provide, so the
 * web layer depends on shapes rather than on the controller's implementation.
 */

/** Plugin names as the Python iocmng accepts them; also safe as a PV name segment and a dir name. */
export const PLUGIN_NAME_PATTERN = "^[A-Za-z0-9_-]{1,128}$";

/** A plugin name (body field or path parameter). */
export const PluginName = t.String({
  pattern: PLUGIN_NAME_PATTERN,
  description: "Plugin name: 1 to 128 of A-Z a-z 0-9 _ -",
  examples: ["my-monitor"],
});

/** Body of `POST /tasks` and `POST /jobs` (the seed's fields, plus `pat_env`). */
export const AddPluginBody = t.Object(
  {
    name: PluginName,
    git_url: t.String({
      minLength: 1,
      maxLength: 4096,
      description: "https://, ssh://, scp-style user@host:path or file:// URL of the repository",
      examples: ["https://github.com/user/my-monitor-task.git"],
    }),
    pat: t.Optional(
      t.String({
        maxLength: 4096,
        description: "Personal access token for a private https repository; never stored or echoed",
      }),
    ),
    branch: t.Optional(
      t.String({ minLength: 1, maxLength: 255, description: "Branch or tag to check out" }),
    ),
    path: t.Optional(
      t.String({
        maxLength: 4096,
        description: "Sub-directory of the repository holding the plugin",
      }),
    ),
    parameters: t.Optional(
      t.Record(t.String(), t.Unknown(), {
        description: "Parameters overriding the ones of the plugin's config.yaml",
      }),
    ),
    auto_start: t.Optional(
      t.Boolean({ description: "Start the plugin right after loading (default true)" }),
    ),
    pat_env: t.Optional(
      t.String({
        pattern: "^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description: "Name of an environment variable of the server holding the token",
      }),
    ),
  },
  { additionalProperties: false },
);
export type AddPluginBody = Static<typeof AddPluginBody>;

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
  kind: t.Union([t.Literal("task"), t.Literal("job")]),
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
