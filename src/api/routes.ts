/**
 * The routes: health, tasks and jobs (list, add, get, PVs, delete, restart) and running a job.
 * They translate between HTTP and the {@link ControllerPort}; every plugin view goes through
 * redact.ts, every failure message is scrubbed of the request's token.
 */
import { Elysia } from "elysia";
import type { Logger } from "pino";
import {
  AddPluginBody,
  ErrorResponse,
  Health,
  NameParams,
  OpResponse,
  type PluginInfo,
  PluginInfo as PluginInfoSchema,
  PluginList,
  PvList,
  RunResponse,
  type ValidationReport,
} from "./models.ts";
import type { ApiResult, ControllerPort } from "./port.ts";
import { jsonSafe, plainInfo, plainPvs, scrub, scrubReport } from "./redact.ts";

/** Plugin parameters are settings, not documents; deeper nesting is a mistake or an attack. */
const MAX_PARAMETER_DEPTH = 32;

/** Nesting depth of a JSON value, stopping early once past the limit (no deep recursion). */
function depth(v: unknown): number {
  let level = 0;
  let current: unknown[] = [v];
  while (current.length > 0 && level <= MAX_PARAMETER_DEPTH) {
    const next: unknown[] = [];
    for (const x of current) {
      if (x !== null && typeof x === "object") next.push(...Object.values(x));
    }
    if (next.length === 0 && current.every((x) => x === null || typeof x !== "object")) break;
    level++;
    current = next;
  }
  return level;
}

/**
 * Adds (clone + dependencies) and job runs legitimately take longer than the server's idle
 * timeout (Elysia sets 30 s), which would reset the connection mid-request; lift it for them.
 */
function longRequest(ctx: {
  server: { timeout(req: Request, seconds: number): void } | null;
  request: Request;
}): void {
  ctx.server?.timeout(ctx.request, 0);
}

type SetStatus = { status?: number | string };

/** The error body of a failed controller operation, with its status. */
function failure(set: SetStatus, r: Extract<ApiResult, { ok: false }>, secret?: string) {
  set.status = r.code;
  const body: ErrorResponse = { ok: false, message: scrub(r.message, secret) };
  if (r.validation !== undefined) body.validation = scrubReport(r.validation, secret);
  return body;
}

function notFound(set: SetStatus, kind: string, name: string) {
  set.status = 404;
  return { ok: false as const, message: `no ${kind} named "${name}"` };
}

/** The body of a successful add or restart: the plugin and its validation report. */
function pluginDone(
  r: { message: string; value: PluginInfo; validation?: ValidationReport },
  secret?: string,
): { ok: boolean; message: string; validation?: ValidationReport; plugin: PluginInfo } {
  const out: { ok: boolean; message: string; validation?: ValidationReport; plugin: PluginInfo } = {
    ok: true,
    message: r.message,
    plugin: plainInfo(r.value),
  };
  if (r.validation !== undefined) out.validation = scrubReport(r.validation, secret);
  return out;
}

const errorResponses = {
  400: ErrorResponse,
  401: ErrorResponse,
  404: ErrorResponse,
  409: ErrorResponse,
  413: ErrorResponse,
  415: ErrorResponse,
  422: ErrorResponse,
  500: ErrorResponse,
};

/** GET /health. */
export function healthRoute(controller: ControllerPort, version: string) {
  return new Elysia().get(
    "/health",
    () => ({
      status: "healthy",
      version,
      tasks_count: controller.list("task").length,
      jobs_count: controller.list("job").length,
    }),
    { response: Health, detail: { tags: ["server"], summary: "Liveness and plugin counts" } },
  );
}

/** Listing and reading plugins of one kind: GET /tasks, /tasks/:name, /tasks/:name/pvs. */
function readRoutes(kind: "task" | "job", controller: ControllerPort) {
  const plural = `${kind}s`;
  const tag = plural;
  return new Elysia()
    .get(
      `/${plural}`,
      () => {
        const plugins = controller.list(kind).map(plainInfo);
        return { plugins, count: plugins.length };
      },
      { response: PluginList, detail: { tags: [tag], summary: `List loaded ${plural}` } },
    )
    .get(
      `/${plural}/:name`,
      ({ params, set }) => {
        const info = controller.get(kind, params.name);
        return info === undefined ? notFound(set, kind, params.name) : plainInfo(info);
      },
      {
        params: NameParams,
        response: { 200: PluginInfoSchema, ...errorResponses },
        detail: { tags: [tag], summary: `One ${kind} with its status and PVs` },
      },
    )
    .get(
      `/${plural}/:name/pvs`,
      ({ params, set }) => {
        const info = controller.get(kind, params.name);
        if (info === undefined) return notFound(set, kind, params.name);
        const pvs = plainPvs(info.pvs);
        return { pvs, count: pvs.length };
      },
      {
        params: NameParams,
        response: { 200: PvList, ...errorResponses },
        detail: { tags: [tag], summary: `PVs of a ${kind} with their current values` },
      },
    );
}

/** Changing plugins of one kind: POST /tasks, DELETE /tasks/:name, POST /tasks/:name/restart. */
function writeRoutes(kind: "task" | "job", controller: ControllerPort, log: Logger | undefined) {
  const plural = `${kind}s`;
  const tag = plural;
  return new Elysia()
    .post(
      `/${plural}`,
      async ({ body, set, server, request }) => {
        if (body.parameters !== undefined && depth(body.parameters) > MAX_PARAMETER_DEPTH) {
          set.status = 422;
          return {
            ok: false,
            message: `body.parameters: nested deeper than ${MAX_PARAMETER_DEPTH} levels`,
          };
        }
        longRequest({ server, request });
        const r = await controller.add({ ...body, kind });
        if (!r.ok) return failure(set, r, body.pat);
        set.status = 201;
        log?.info({ kind, name: body.name }, `${kind} added`);
        return pluginDone(r, body.pat);
      },
      {
        body: AddPluginBody,
        response: { 201: OpResponse, ...errorResponses },
        detail: {
          tags: [tag],
          security: [{ bearer: [] }],
          summary: `Add a ${kind} from a git repository`,
          description:
            "Clones, validates (each step reported in `validation`), creates the PVs and starts it. 409 when the name is taken, 422 when validation fails.",
        },
      },
    )
    .delete(
      `/${plural}/:name`,
      async ({ params, set }) => {
        const r = await controller.remove(kind, params.name);
        if (!r.ok) return failure(set, r);
        log?.info({ kind, name: params.name }, `${kind} removed`);
        return { ok: true, message: r.message };
      },
      {
        params: NameParams,
        response: { 200: OpResponse, ...errorResponses },
        detail: { tags: [tag], security: [{ bearer: [] }], summary: `Stop and remove a ${kind}` },
      },
    )
    .post(
      `/${plural}/:name/restart`,
      async ({ params, set, server, request }) => {
        longRequest({ server, request });
        if (controller.get(kind, params.name) === undefined) {
          return notFound(set, kind, params.name);
        }
        const r = await controller.restart(params.name);
        if (!r.ok) return failure(set, r);
        log?.info({ kind, name: params.name }, `${kind} restarted`);
        return pluginDone(r);
      },
      {
        params: NameParams,
        response: { 200: OpResponse, ...errorResponses },
        detail: {
          tags: [tag],
          security: [{ bearer: [] }],
          summary: `Re-clone and reload a ${kind}; its PVs keep their values`,
          description:
            "404 unknown name, 409 while it is being changed, 422 when the new code fails validation (the previous version is loaded again).",
        },
      },
    );
}

/** Every route of one kind. */
export function pluginRoutes(
  kind: "task" | "job",
  controller: ControllerPort,
  log: Logger | undefined,
) {
  return new Elysia().use(readRoutes(kind, controller)).use(writeRoutes(kind, controller, log));
}

/** POST /jobs/:name/run. */
export function runJobRoute(controller: ControllerPort) {
  return new Elysia().post(
    "/jobs/:name/run",
    async ({ params, set, server, request }) => {
      longRequest({ server, request });
      const r = await controller.runJob(params.name);
      if (!r.ok) return failure(set, r);
      return {
        ok: r.value.success,
        message: r.value.message,
        result: { ...r.value, data: jsonSafe(r.value.data) },
      };
    },
    {
      params: NameParams,
      response: { 200: RunResponse, ...errorResponses },
      detail: {
        tags: ["jobs"],
        security: [{ bearer: [] }],
        summary: "Run a job once and return its result",
        description:
          "200 whenever the job ran; `ok` mirrors `result.success`. 404 unknown job, 409 already running.",
      },
    },
  );
}
