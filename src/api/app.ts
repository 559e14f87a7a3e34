/**
 * The REST application, assembled from small Elysia plugins, in the order they act on a request:
 * request log (times every request, refused ones too) → bearer auth (401 before the body is read)
 * → body limits and JSON parsing (413, 415, 400) → error mapping (our `{ok:false}` shape) →
 * OpenAPI document → routes. Each plugin lives in its own file with its own tests.
 */
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import type { Logger } from "pino";
import { bearerAuth } from "./auth.ts";
import { DEFAULT_BODY_LIMIT, jsonBody } from "./body.ts";
import { errorMapping } from "./errors.ts";
import { requestLog } from "./logging.ts";
import type { ControllerPort } from "./port.ts";
import { healthRoute, pluginRoutes, runJobRoute } from "./routes.ts";

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
}

/** The OpenAPI document and its page (/api/v1/docs, /api/v1/openapi.json). */
function apiDocs(version: string) {
  return openapi({
    path: "/docs",
    specPath: "/openapi.json",
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
  return new Elysia({ prefix: "/api/v1", normalize: false })
    .use(requestLog(log))
    .use(bearerAuth(deps.apiToken))
    .use(jsonBody(deps.bodyLimit ?? DEFAULT_BODY_LIMIT))
    .use(errorMapping(log))
    .use(apiDocs(deps.version))
    .use(healthRoute(controller, deps.version))
    .use(pluginRoutes("task", controller, log))
    .use(pluginRoutes("job", controller, log))
    .use(runJobRoute(controller));
}
