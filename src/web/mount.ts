/**
 * Everything the operator console work adds to the HTTP server, as Elysia plugins the composition
 * root mounts around the REST app: `root` (paths from `/`: /metrics with the request observer,
 * the PV Web Socket, the console) goes first so its request hooks see every route; `api` (extra
 * routes under /api/v1) is used by the REST app. Kept apart from src/api/app.ts so the REST app
 * stays a factory of its own routes.
 */
import { type AnyElysia, Elysia } from "elysia";
import type { Logger } from "pino";
import { caClient, libcaAvailable } from "../../ffi/index.ts";
import type { PluginInfo } from "../api/models.ts";
import type { CaServerStats } from "../ca/server/index.ts";
import { createMetrics, type Metrics } from "../metrics/metrics.ts";
import type { AddProgress } from "../plugins/progress.ts";
import type { AccessPolicy } from "../pv/access.ts";
import type { PvSource } from "../pv/source.ts";
import type { PvaServerStats } from "../pva/server/index.ts";
import { PvwsHub, pvwsPlugin, type WriteAuthorizer } from "../pvws/hub.ts";
import { docsAssets } from "./docs.ts";
import type { LogRings } from "./logring.ts";
import { CONSOLE_ROUTES } from "./page.ts";
import { consoleRoutes } from "./routes.ts";

export { PVWS_WEBSOCKET_CONFIG } from "../pvws/hub.ts";
/** Bun.serve routes of the root app (`new Elysia({ serve: { routes } })`): the console page. */
export const WEB_SERVE_ROUTES = CONSOLE_ROUTES;

export interface WebDeps {
  source: PvSource;
  plugins: {
    list(kind: "task" | "job"): PluginInfo[];
    /** The OS pid of a plugin's process (resource use in the console and /metrics). */
    pidOf?(name: string): number | null;
    /** Steps of adds in flight (the console's live add progress). */
    progress?: AddProgress;
  };
  apiToken: string | null;
  logger: Logger;
  logs: LogRings;
  ca?: { stats(): CaServerStats };
  pva?: { stats(): PvaServerStats };
  /** Access security: PVWS writes follow the same rules as CA and PVA writes. */
  access?: AccessPolicy;
  /** An extra check of PVWS writes, after access security. */
  authorizeWrite?: WriteAuthorizer;
}

export interface WebParts {
  /** Mounted on the root app before the REST app (paths from `/`). */
  root: AnyElysia;
  /** Mounted on the REST app (paths under /api/v1). */
  api: AnyElysia;
  pvws: PvwsHub;
  metrics: Metrics;
  /** Stops watching the PV source. */
  stop(): void;
}

export function createWebParts(deps: WebDeps): WebParts {
  const pvws = new PvwsHub({
    source: deps.source,
    apiToken: deps.apiToken,
    logger: deps.logger,
    ...(deps.authorizeWrite ? { authorizeWrite: deps.authorizeWrite } : {}),
    ...(deps.access ? { access: deps.access } : {}),
    // Other IOCs' PVs (`ca://NAME`) through this thread's libca client, when libca is installed.
    // Whether it is gets asked at the first such name, not here: finding out loads libca (with
    // libCom and libstdc++) and binds its symbols, ~2 MB of an idle server's memory that a server
    // whose console never shows another IOC's PV does not need (docs/benchmarks.md).
    remote: () => caClient(),
    remoteAvailable: libcaAvailable,
  });
  const metrics = createMetrics({
    source: deps.source,
    plugins: deps.plugins,
    pvws,
    logs: deps.logs,
    ...(deps.ca ? { ca: deps.ca } : {}),
    ...(deps.pva ? { pva: deps.pva } : {}),
  });
  const root = new Elysia({ name: "iocmng-web-root" })
    .use(metrics.plugin)
    .use(pvwsPlugin(pvws, deps.logger))
    .use(docsAssets());
  const api = consoleRoutes({ plugins: deps.plugins, logs: deps.logs, source: deps.source });
  return {
    root,
    api,
    pvws,
    metrics,
    stop: () => {
      pvws.dispose();
      metrics.stop();
    },
  };
}
