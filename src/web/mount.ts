/**
 * Everything the operator console work adds to the HTTP server, as Elysia plugins the composition
 * root mounts beside the REST app: `root` (paths from `/`: the PV Web Socket, later the console
 * and /metrics) and `api` (extra routes under /api/v1). Kept apart from src/api/app.ts so the REST
 * app stays a factory of its own routes only.
 */
import { type AnyElysia, Elysia } from "elysia";
import type { Logger } from "pino";
import type { PvSource } from "../pv/source.ts";
import { PvwsHub, pvwsPlugin, type WriteAuthorizer } from "../pvws/hub.ts";

export { PVWS_WEBSOCKET_CONFIG } from "../pvws/hub.ts";

export interface WebDeps {
  source: PvSource;
  apiToken: string | null;
  logger: Logger;
  /** Access control for PVWS writes (issue 14 plugs the CA rules in here). */
  authorizeWrite?: WriteAuthorizer;
}

export interface WebParts {
  /** Mounted on the root app (paths from `/`). */
  root: AnyElysia;
  /** Mounted on the REST app (paths under /api/v1). */
  api: AnyElysia;
  pvws: PvwsHub;
  /** Stops watching the PV source. */
  stop(): void;
}

export function createWebParts(deps: WebDeps): WebParts {
  const pvws = new PvwsHub({
    source: deps.source,
    apiToken: deps.apiToken,
    logger: deps.logger,
    ...(deps.authorizeWrite ? { authorizeWrite: deps.authorizeWrite } : {}),
  });
  const root = new Elysia({ name: "iocmng-web-root" }).use(pvwsPlugin(pvws, deps.logger));
  const api = new Elysia({ name: "iocmng-web-api" });
  return {
    root,
    api,
    pvws,
    stop: () => pvws.dispose(),
  };
}
