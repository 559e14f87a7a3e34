/**
 * The REST routes of iocmng 2.7.9 that our own API lacks, next to ours under /api/v1: `/plugins`
 * (add with the kind detected from the code, list, get, delete, restart, run),
 * `/tasks|jobs/{name}/startup`, `/devices` and `/jobs/{name}/results`. Bodies carry the fields
 * 2.7.9 clients (the epik8s dashboard) read — `ok`, `message`, `validation.errors`, `detail` on
 * errors, `plugin_type`, `class_name`, `start_parameters`, `pv_definitions`, `built_pvs`, 2.7.9's
 * status words — while status codes stay honest: a refused add is a 4xx, not 200 with ok:false.
 * The routes talk to the runtime only through `CompatPort`, which server.ts adapts.
 */
import { Elysia, t } from "elysia";
import {
  type CompatPlugin,
  type CompatValidation,
  pluginInfo,
  startupInfo,
} from "./compat-info.ts";

/** A 2.7.9 add request (`AddPluginRequest`) plus our `pat_env`. */
export interface CompatAddRequest {
  name: string;
  git_url?: string;
  local_path?: string;
  path: string;
  branch: string;
  pat?: string;
  pat_env?: string;
  auto_start: boolean;
  auto_start_on_boot: boolean;
  autostart_order: number | null;
  parameters?: Record<string, unknown>;
}

/** A job's result as the API shows it. */
export interface CompatJobResult {
  success: boolean;
  data: unknown;
  message: string;
  timestamp: string;
}

/** Outcome of a runtime operation, with the HTTP status to answer on failure. */
export type CompatResult<T = undefined> =
  | { ok: true; message: string; value: T; validation?: CompatValidation }
  | {
      ok: false;
      code: 400 | 403 | 404 | 409 | 422 | 500;
      message: string;
      validation?: CompatValidation;
    };

/** What the compat routes need from the runtime. */
export interface CompatPort {
  list(): CompatPlugin[];
  get(name: string): CompatPlugin | undefined;
  /** `kind: "auto"`: whatever the plugin's class is (POST /plugins). */
  add(req: CompatAddRequest, kind: "task" | "job" | "auto"): Promise<CompatResult<CompatPlugin>>;
  remove(name: string): Promise<CompatResult>;
  restart(name: string): Promise<CompatResult<CompatPlugin>>;
  runJob(name: string): Promise<CompatResult<CompatJobResult>>;
  /** The job's last results, newest last (undefined for an unknown job). */
  results(name: string): CompatJobResult[] | undefined;
  devices(): { available: string[]; created: string[] };
}

const NAME = t.String({ pattern: "^[A-Za-z0-9_-]{1,128}$" });
const NameParams = t.Object({ name: NAME });

/** Body of POST /plugins: 2.7.9's fields with their defaults; unknown fields are refused. */
export const CompatAddBody = t.Object(
  {
    name: NAME,
    git_url: t.Optional(t.Union([t.Null(), t.String({ minLength: 1, maxLength: 4096 })])),
    local_path: t.Optional(t.Union([t.Null(), t.String({ minLength: 1, maxLength: 4096 })])),
    path: t.Optional(t.String({ maxLength: 1024 })),
    pat: t.Optional(t.Union([t.Null(), t.String({ maxLength: 4096 })])),
    pat_env: t.Optional(t.String({ pattern: "^[A-Za-z_][A-Za-z0-9_]{0,127}$" })),
    branch: t.Optional(t.String({ minLength: 1, maxLength: 255 })),
    auto_start: t.Optional(t.Boolean()),
    auto_start_on_boot: t.Optional(t.Boolean()),
    autostart_order: t.Optional(t.Union([t.Null(), t.Integer()])),
    parameters: t.Optional(t.Union([t.Null(), t.Record(t.String(), t.Unknown())])),
  },
  { additionalProperties: false },
);

type Body = typeof CompatAddBody.static;

/** The request with 2.7.9's defaults filled in; null pat/git_url/local_path count as absent. */
export function compatRequest(b: Body): CompatAddRequest {
  return {
    name: b.name,
    ...(b.git_url ? { git_url: b.git_url } : {}),
    ...(b.local_path ? { local_path: b.local_path } : {}),
    path: b.path ?? "",
    branch: b.branch ?? "main",
    ...(b.pat ? { pat: b.pat } : {}),
    ...(b.pat_env ? { pat_env: b.pat_env } : {}),
    auto_start: b.auto_start ?? true,
    auto_start_on_boot: b.auto_start_on_boot ?? false,
    autostart_order: b.autostart_order ?? null,
    ...(b.parameters ? { parameters: b.parameters } : {}),
  };
}

type SetStatus = { status?: number | string };

/** An error body both 2.7.9 (`detail`) and our clients (`ok`, `message`) read. */
function fail(
  set: SetStatus,
  code: number,
  message: string,
  validation: CompatValidation | null = null,
) {
  set.status = code;
  return { ok: false as const, message, detail: message, validation };
}

const titled = (kind: "task" | "job") => (kind === "task" ? "Task" : "Job");

/** The 2.7.9 routes (mounted under /api/v1). */
export function compatRoutes(port: CompatPort) {
  const startup = (kind: "task" | "job") =>
    new Elysia({ name: `iocmng-compat-${kind}-startup` }).get(
      `/${kind}s/:name/startup`,
      ({ params, set }) => {
        const p = port.get(params.name);
        if (!p || p.kind !== kind)
          return fail(set, 404, `${titled(kind)} '${params.name}' not found`);
        return startupInfo(p);
      },
      { params: NameParams, detail: { tags: ["2.7.9"], summary: `Startup metadata of a ${kind}` } },
    );

  return new Elysia({ name: "iocmng-compat" })
    .use(pluginCrud(port))
    .use(pluginActions(port))
    .use(startup("task"))
    .use(startup("job"))
    .get(
      "/devices",
      () => {
        const { available, created } = port.devices();
        return {
          available,
          available_count: available.length,
          created,
          created_count: created.length,
        };
      },
      { detail: { tags: ["2.7.9"], summary: "Devices of the values file, and those in use" } },
    );
}

/** `/plugins`: add (kind from the code), list, get, delete. */
function pluginCrud(port: CompatPort) {
  return new Elysia({ name: "iocmng-compat-plugins" })
    .post(
      "/plugins",
      async ({ body, set }) => {
        const req = compatRequest(body);
        if (req.git_url === undefined && req.local_path === undefined) {
          return fail(set, 422, "Either git_url or local_path must be provided");
        }
        const r = await port.add(req, "auto");
        if (!r.ok) return fail(set, r.code, r.message, r.validation ?? null);
        set.status = 201;
        return {
          ok: true,
          message: `Plugin '${req.name}' added successfully`,
          validation: r.validation ?? null,
          plugin: pluginInfo(r.value),
        };
      },
      {
        body: CompatAddBody,
        detail: {
          tags: ["2.7.9"],
          summary: "Add a task or a job (kind from its class), 2.7.9's request",
          description:
            "201 added; 409 name taken; 422 validation failed (validation.errors says why).",
        },
      },
    )
    .get(
      "/plugins",
      ({ query, set }) => {
        const type = query.type;
        if (type !== undefined && type !== "task" && type !== "job") {
          return fail(set, 422, `type must be task or job, got '${type}'`);
        }
        const plugins = port
          .list()
          .filter((p) => type === undefined || p.kind === type)
          .map(pluginInfo);
        return { plugins, count: plugins.length };
      },
      {
        query: t.Object({ type: t.Optional(t.String({ maxLength: 16 })) }),
        detail: { tags: ["2.7.9"], summary: "Every plugin (?type=task|job)" },
      },
    )
    .get(
      "/plugins/:name",
      ({ params, set }) => {
        const p = port.get(params.name);
        return p ? pluginInfo(p) : fail(set, 404, `Plugin '${params.name}' not found`);
      },
      {
        params: NameParams,
        detail: { tags: ["2.7.9"], summary: "One plugin, 2.7.9's PluginInfo" },
      },
    )
    .delete(
      "/plugins/:name",
      async ({ params, set }) => {
        if (!port.get(params.name)) return fail(set, 404, `Plugin '${params.name}' not found`);
        const r = await port.remove(params.name);
        if (!r.ok) return fail(set, r.code, r.message);
        return { ok: true, message: `Plugin '${params.name}' removed`, validation: null };
      },
      { params: NameParams, detail: { tags: ["2.7.9"], summary: "Stop and remove a plugin" } },
    );
}

/** Restart a plugin, run a job, a job's results. */
function pluginActions(port: CompatPort) {
  return new Elysia({ name: "iocmng-compat-actions" })
    .post(
      "/plugins/:name/restart",
      async ({ params, set }) => {
        if (!port.get(params.name)) return fail(set, 404, `Plugin '${params.name}' not found`);
        const r = await port.restart(params.name);
        if (!r.ok) return fail(set, r.code, r.message, r.validation ?? null);
        return {
          ok: true,
          message: `Plugin '${params.name}' restarted successfully`,
          validation: r.validation ?? null,
        };
      },
      { params: NameParams, detail: { tags: ["2.7.9"], summary: "Re-fetch and reload a plugin" } },
    )
    .post(
      "/plugins/:name/run",
      async ({ params, set }) => {
        const p = port.get(params.name);
        if (!p) return fail(set, 404, `Plugin '${params.name}' not found`);
        if (p.kind !== "job") {
          return fail(set, 400, `'${params.name}' is a task, not a job — use DELETE or restart`);
        }
        const r = await port.runJob(params.name);
        if (!r.ok) return fail(set, r.code, r.message);
        return { ok: r.value.success, message: r.value.message, result: r.value };
      },
      { params: NameParams, detail: { tags: ["2.7.9"], summary: "Run a job once" } },
    )
    .get(
      "/jobs/:name/results",
      ({ params, set }) => {
        const results = port.results(params.name);
        if (results === undefined) return fail(set, 404, `Job '${params.name}' not found`);
        return { name: params.name, results, count: results.length };
      },
      {
        params: NameParams,
        detail: { tags: ["jobs"], summary: "The job's last results, newest last" },
      },
    );
}
