import { createHash, timingSafeEqual } from "node:crypto";
import { openapi } from "@elysiajs/openapi";
import { Elysia, ValidationError } from "elysia";
import type { Logger } from "pino";
import { OFFLINE_SCALAR } from "../web/docs.ts";
import {
  AddPluginBody,
  ErrorResponse,
  Health,
  type JobResult,
  NameParams,
  OpResponse,
  PluginInfo,
  PluginList,
  type PluginPv,
  PvList,
  RunResponse,
  type ValidationReport,
} from "./models.ts";

/** HTTP status codes the controller may ask for when an operation fails. */
export type FailureCode = 400 | 404 | 409 | 422 | 500;

/** Outcome of a controller operation (mirrors `OpResult` of src/plugins/controller.ts). */
export type ApiResult<T = undefined> =
  | { ok: true; message: string; value: T; validation?: ValidationReport }
  | { ok: false; code: FailureCode; message: string; validation?: ValidationReport };

/**
 * What the REST layer needs from the plugin controller. `PluginController` satisfies it
 * structurally; keeping the port here lets the web layer compile and be read on its own.
 */
export interface ControllerPort {
  add(req: AddPluginBody & { kind: "task" | "job" }): Promise<ApiResult<PluginInfo>>;
  remove(kind: "task" | "job", name: string): Promise<ApiResult<unknown>>;
  list(kind: "task" | "job"): PluginInfo[];
  get(kind: "task" | "job", name: string): PluginInfo | undefined;
  runJob(name: string): Promise<ApiResult<JobResult>>;
  restart(name: string): Promise<ApiResult<PluginInfo>>;
}

/** Dependencies of the HTTP layer. */
export interface AppDeps {
  controller: ControllerPort;
  version: string;
  /** When set, every mutating request needs `Authorization: Bearer <token>`. */
  apiToken: string | null;
  logger?: Logger;
  /** Largest accepted request body in bytes (default {@link DEFAULT_BODY_LIMIT}). */
  bodyLimit?: number;
}

/** 64 KiB: an add request is a few hundred bytes; parameters of a plugin are small by nature. */
export const DEFAULT_BODY_LIMIT = 64 * 1024;

/** Our own error with an HTTP status; the error hook turns it into the `{ok:false}` body. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Plugin parameters are settings, not documents; deeper nesting is a mistake or an attack. */
export const MAX_PARAMETER_DEPTH = 32;

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

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

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

/** Constant-time token comparison: hashing first makes both sides the same length. */
function tokenMatches(header: string | null, token: string): boolean {
  if (header === null) return false;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (m === null || m[1] === undefined) return false;
  const a = createHash("sha256").update(m[1]).digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b);
}

/** Reads a request body as text, refusing more than `limit` bytes even without Content-Length. */
async function readLimited(request: Request, limit: number): Promise<string> {
  const body = request.body;
  if (body === null) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new ApiError(413, `request body larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return new TextDecoder("utf-8", { fatal: false }).decode(Buffer.concat(chunks));
}

/** One readable line per schema violation: where, and what was expected. Never the value itself. */
function describeValidation(error: ValidationError): string {
  const where = error.type === "params" ? "path" : error.type;
  const lines: string[] = [];
  for (const e of error.all) {
    const path = "path" in e && typeof e.path === "string" ? e.path : "";
    const field = path.replace(/^\//, "").replaceAll("/", ".");
    let what = "message" in e && typeof e.message === "string" ? e.message : "invalid";
    const schema = "schema" in e ? (e.schema as { pattern?: unknown }) : undefined;
    if (schema?.pattern !== undefined && /pattern/i.test(what)) {
      what = `expected a string matching ${String(schema.pattern)}`;
    }
    if (/unexpected property/i.test(what) || /additional/i.test(what)) {
      what = "unknown field";
    }
    lines.push(field === "" ? `${where}: ${what}` : `${where}.${field}: ${what}`);
    if (lines.length >= 10) break;
  }
  if (lines.length === 0) lines.push(`${where}: invalid`);
  return [...new Set(lines)].join("; ");
}

/** JSON cannot carry typed arrays or non-finite numbers; make PV values plain JSON. */
function jsonValue(v: unknown): unknown {
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    return Array.from(v as unknown as ArrayLike<number>, (x) => (Number.isFinite(x) ? x : null));
  }
  if (typeof v === "number" && !Number.isFinite(v)) return null;
  return v;
}

/** Copies only the documented fields: nothing else the controller holds can leak (a token, say). */
function plainPvs(pvs: PluginPv[]): PluginPv[] {
  return pvs.map((p) => ({
    name: p.name,
    fullName: p.fullName,
    kind: p.kind,
    writable: p.writable,
    value: jsonValue(p.value),
    status: p.status,
    severity: p.severity,
  }));
}

/** The documented view of a plugin (whitelisted, JSON-safe). */
function plainInfo(info: PluginInfo): PluginInfo {
  const out: PluginInfo = {
    name: info.name,
    kind: info.kind,
    status: info.status,
    message: info.message,
    prefix: info.prefix,
    git_url: redactUrl(info.git_url),
    parameters: jsonSafe(info.parameters ?? {}) as Record<string, unknown>,
    pvs: plainPvs(info.pvs),
    running: info.running,
  };
  if (info.mode !== undefined) out.mode = info.mode;
  if (info.cycleCount !== undefined) out.cycleCount = info.cycleCount;
  if (info.branch !== undefined) out.branch = info.branch;
  if (info.path !== undefined) out.path = info.path;
  return out;
}

/** Defence in depth: the request's token and URL credentials never appear in what we send. */
function scrub(text: string, secret?: string): string {
  let t = text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, "$1***@");
  if (secret !== undefined && secret.length > 0) t = t.replaceAll(secret, "***");
  return t;
}

function scrubReport(v: ValidationReport, secret?: string): ValidationReport {
  const out: ValidationReport = {
    ok: v.ok,
    message: scrub(v.message, secret),
    steps: v.steps.map((s) => ({ step: s.step, ok: s.ok, message: scrub(s.message, secret) })),
  };
  if (v.failedStep !== undefined) out.failedStep = v.failedStep;
  return out;
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

/** Credentials typed into a URL (https://user:token@host) are never shown back. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@");
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

/** Builds the REST application without listening, so tests can call `app.handle(request)`. */
export function createApp(deps: AppDeps) {
  const { controller, apiToken } = deps;
  const bodyLimit = deps.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const log = deps.logger?.child({ component: "rest" });
  const started = new WeakMap<Request, number>();

  const failure = (
    set: { status?: number | string },
    r: Extract<ApiResult, { ok: false }>,
    secret?: string,
  ) => {
    set.status = r.code;
    const body: ErrorResponse = { ok: false, message: scrub(r.message, secret) };
    if (r.validation !== undefined) body.validation = scrubReport(r.validation, secret);
    return body;
  };

  const notFound = (set: { status?: number | string }, kind: string, name: string) => {
    set.status = 404;
    return { ok: false as const, message: `no ${kind} named "${name}"` };
  };

  const pluginRoutes = (kind: "task" | "job") => {
    const plural = `${kind}s`;
    const tag = kind === "task" ? "tasks" : "jobs";
    return new Elysia({ name: `iocmng-${plural}` })
      .get(
        `/${plural}`,
        () => {
          const plugins = controller.list(kind).map(plainInfo);
          return { plugins, count: plugins.length };
        },
        { response: PluginList, detail: { tags: [tag], summary: `List loaded ${plural}` } },
      )
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
          parse: "application/json",
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
      .get(
        `/${plural}/:name`,
        ({ params, set }) => {
          const info = controller.get(kind, params.name);
          return info === undefined ? notFound(set, kind, params.name) : plainInfo(info);
        },
        {
          params: NameParams,
          response: { 200: PluginInfo, ...errorResponses },
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
  };

  // normalize off: unknown body fields are refused (a typo like `brnach` must not pass silently).
  const app = new Elysia({ prefix: "/api/v1", normalize: false })
    .use(
      openapi({
        path: "/docs",
        specPath: "/openapi.json",
        // The viewer's script comes from the executable, never from a CDN (closed networks).
        scalar: OFFLINE_SCALAR,
        documentation: {
          info: {
            title: "iocmng REST API",
            version: deps.version,
            description:
              "Load TypeScript tasks and jobs from git at runtime; each gets Channel Access PVs. Mutating requests need `Authorization: Bearer <token>` when the server has IOCMNG_API_TOKEN.",
          },
          components: {
            securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
          },
        },
      }),
    )
    .error({ ApiError })
    // Auth and size checks run before the body is even read.
    .onRequest(({ request, set }) => {
      started.set(request, performance.now());
      if (apiToken !== null && MUTATING.has(request.method)) {
        if (!tokenMatches(request.headers.get("authorization"), apiToken)) {
          set.status = 401;
          set.headers["www-authenticate"] = 'Bearer realm="iocmng"';
          return {
            ok: false,
            message: "missing or wrong bearer token (Authorization: Bearer <token>)",
          };
        }
      }
      const len = request.headers.get("content-length");
      if (len !== null && Number(len) > bodyLimit) {
        set.status = 413;
        return { ok: false, message: `request body larger than ${bodyLimit} bytes` };
      }
    })
    // Our own JSON parser: bounded even for chunked bodies, and malformed JSON becomes a 400.
    .onParse(async ({ request, contentType }) => {
      const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
      const text = await readLimited(request, bodyLimit);
      if (text.trim() === "") return undefined;
      if (type !== "application/json" && !type.endsWith("+json")) {
        throw new ApiError(415, `expected Content-Type application/json, got '${type || "none"}'`);
      }
      try {
        return JSON.parse(text) as unknown;
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new ApiError(400, `malformed JSON body: ${why.slice(0, 200)}`);
      }
    })
    // One line per request (never the body: it may hold a token); reads only at debug level.
    .onAfterResponse(({ request, set }) => {
      if (log === undefined) return;
      const t0 = started.get(request);
      const ms = t0 === undefined ? undefined : Math.round(performance.now() - t0);
      const path = new URL(request.url).pathname;
      const entry = { method: request.method, path, status: set.status, ms };
      if (MUTATING.has(request.method)) log.info(entry, "request");
      else log.debug(entry, "request");
    })
    .onError(({ code, error, set }) => {
      // Elysia wraps what a parser throws in a ParseError; ours carries the real status.
      const own =
        error instanceof ApiError
          ? error
          : error instanceof Error && error.cause instanceof ApiError
            ? error.cause
            : null;
      if (own !== null) {
        set.status = own.status;
        return { ok: false, message: own.message };
      }
      if (code === "VALIDATION" && error instanceof ValidationError) {
        if (error.type === "response") {
          log?.error({ err: describeValidation(error) }, "response failed its own schema");
          set.status = 500;
          return { ok: false, message: "internal error: response did not match its schema" };
        }
        // 422 like the Python iocmng (FastAPI) for well-formed JSON of the wrong shape.
        set.status = 422;
        return { ok: false, message: describeValidation(error) };
      }
      if (code === "NOT_FOUND") {
        set.status = 404;
        return { ok: false, message: "no such endpoint" };
      }
      if (code === "PARSE") {
        set.status = 400;
        return { ok: false, message: "malformed request body" };
      }
      log?.error({ err: error }, "request failed");
      set.status = 500;
      return { ok: false, message: "internal error" };
    })
    .get(
      "/health",
      () => ({
        status: "healthy",
        version: deps.version,
        tasks_count: controller.list("task").length,
        jobs_count: controller.list("job").length,
      }),
      { response: Health, detail: { tags: ["server"], summary: "Liveness and plugin counts" } },
    )
    .use(pluginRoutes("task"))
    .use(pluginRoutes("job"))
    .post(
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
  return app;
}

/** Job data goes out as JSON: drop what JSON cannot carry instead of failing the response. */
function jsonSafe(v: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(v ?? null, (_k, x: unknown) => jsonValue(x))) as unknown;
  } catch {
    return null;
  }
}

/** The app type, for typed clients (Eden) and tests. */
export type App = ReturnType<typeof createApp>;
