/**
 * The REST application, assembled from small Elysia plugins, in the order they act on a request:
 * request log (times every request, refused ones too) → bearer auth (401 before the body is read)
 * → body limits and JSON parsing (413, 415, 400) → error mapping (our `{ok:false}` shape) →
 * OpenAPI document → routes. Each plugin lives in its own file with its own tests.
 */
import { openapi } from "@elysiajs/openapi";
import { type AnyElysia, Elysia } from "elysia";
import type { Logger } from "pino";
import type { MutationRecord } from "../common/mutation-record.ts";
import { bearerAuth } from "./auth.ts";
import { DEFAULT_BODY_LIMIT, jsonBody } from "./body.ts";
import { type CompatPort, compatRoutes } from "./compat.ts";
import { type CorsOrigins, cors } from "./cors.ts";
import { errorMapping } from "./errors.ts";
import { requestLog } from "./logging.ts";
import { mutationHook } from "./mutations.ts";
import type { ControllerPort } from "./port.ts";
import { type PvProxyDeps, pvsProxy } from "./pvs-proxy.ts";
import { healthRoute, pluginRoutes, runJobRoute } from "./routes.ts";

export type { MutationRecord } from "../common/mutation-record.ts";
export { DEFAULT_BODY_LIMIT } from "./body.ts";
export type { ApiResult, ControllerPort } from "./port.ts";

/** Dependencies of the HTTP layer. */
export interface AppDeps {
  controller: ControllerPort;
  version: string;
  /** When set, every mutating request needs `Authorization: Bearer <token>`. */
  apiToken: string | null;
  logger?: Logger;
  /** Largest accepted request body in bytes (default {@link DEFAULT_BODY_LIMIT}). */
  bodyLimit?: number;
  /** More routes under /api/v1 (access security's), wired in by src/server.ts. */
  routes?: AnyElysia[];
  /** Told of every finished mutating request, with its caller (the audit trail). */
  onMutation?: (m: MutationRecord) => void;
  /** The iocmng 2.7.9 routes (/plugins, /startup, /devices, /jobs/{n}/results). */
  compat?: CompatPort;
  /** Allowed browser origins (IOCMNG_CORS_ORIGINS); null or absent: no CORS. */
  cors?: CorsOrigins;
  /** The 2.7.9 /pvs/* proxy through the CA client. */
  pvProxy?: PvProxyDeps;
  /**
   * Options of the docs page's viewer (Scalar). The server passes the offline ones of
   * src/web/docs.ts (script served from the executable); without them the viewer comes from a CDN.
   */
  docsViewer?: DocsViewerOptions;
}

/** The `scalar` options of @elysiajs/openapi. */
export type DocsViewerOptions = NonNullable<NonNullable<Parameters<typeof openapi>[0]>["scalar"]>;

/** The OpenAPI document and its page (/api/v1/docs, /api/v1/openapi.json). */
function apiDocs(version: string, viewer: DocsViewerOptions | undefined) {
  return openapi({
    path: "/docs",
    specPath: "/openapi.json",
    ...(viewer !== undefined ? { scalar: viewer } : {}),
    documentation: {
      info: {
        title: "iocmng REST API",
        version,
        description:
          "Load TypeScript tasks and jobs from git at runtime; each gets Channel Access PVs. Mutating requests need `Authorization: Bearer <token>` when the server has IOCMNG_API_TOKEN.",
      },
      components: {
        securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      },
    },
  });
}

/** Builds the REST application without listening, so tests can call `app.handle(request)`. */
export function createApp(deps: AppDeps) {
  const { controller } = deps;
  const log = deps.logger?.child({ component: "rest" });
  // normalize off: unknown body fields are refused (a typo like `brnach` must not pass silently).
  const app = new Elysia({ prefix: "/api/v1", normalize: false })
    .use(requestLog(log))
    // Before auth: a browser's preflight carries no token.
    .use(cors(deps.cors ?? null))
    .use(mutationHook(deps.apiToken, deps.onMutation))
    .use(bearerAuth(deps.apiToken))
    .use(jsonBody(deps.bodyLimit ?? DEFAULT_BODY_LIMIT))
    .use(errorMapping(log))
    .use(apiDocs(deps.version, deps.docsViewer))
    .use(healthRoute(controller, deps.version))
    .use(pluginRoutes("task", controller, log))
    .use(pluginRoutes("job", controller, log))
    .use(runJobRoute(controller))
    // The 2.7.9 routes are plain additions: with none given, the app is what it was.
    .use(deps.compat ? compatRoutes(deps.compat) : new Elysia({ name: "iocmng-no-compat" }))
    .use(deps.pvProxy ? pvsProxy(deps.pvProxy) : new Elysia({ name: "iocmng-no-pvs" }));
  // use() registers on the instance itself; the returned (re-typed) instance is the same one.
  for (const r of deps.routes ?? []) app.use(r);
  return app;
}
