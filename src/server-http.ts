/**
 * The HTTP half of the composition root (src/server.ts): over a restored runtime, the console's
 * parts and the REST app, listening on IOCMNG_HOST:IOCMNG_PORT.
 */
import { Elysia } from "elysia";
import type { Logger } from "pino";
import { accessRoutes, auditRequest } from "./access/rest.ts";
import { type AppDeps, createApp, DEFAULT_BODY_LIMIT } from "./api/app.ts";
import type { CaServer } from "./ca/server/index.ts";
import { errorMessage } from "./common/errors.ts";
import type { CompatWiring } from "./compat/wiring.ts";
import type { ServerConfig } from "./config.ts";
import type { Runtime } from "./server.ts";
import { VERSION } from "./version.ts";
import { OFFLINE_SCALAR } from "./web/docs.ts";
import type { LogRings } from "./web/logring.ts";
import {
  createWebParts,
  PVWS_WEBSOCKET_CONFIG,
  WEB_SERVE_ROUTES,
  type WebParts,
} from "./web/mount.ts";

/**
 * The HTTP side over a restored runtime: the console's parts (logs, progress, PVWS, metrics) and
 * the REST app with access routes, audit and the 2.7.9 additions. Registers their cleanups (the
 * REST app first: it stops taking requests before anything else stops) and returns the port.
 */
export function serveHttp(
  runtime: Runtime,
  compat: CompatWiring,
  ctx: {
    config: ServerConfig;
    logger: Logger;
    logs: LogRings;
    cleanups: Array<() => Promise<void> | void>;
    idleTimeoutSec: number;
  },
): number {
  const { controller, registry } = runtime;
  const ca = runtime.ca as CaServer;
  const { config, logger, logs, cleanups } = ctx;
  const web = createWebParts({
    source: registry,
    plugins: {
      list: (kind) => controller.list(kind),
      pidOf: (name) => controller.pidOf(name),
      progress: controller.progress,
    },
    apiToken: config.apiToken,
    logger,
    logs,
    ca,
    // PVWS writes follow access security like CA and PVA writes.
    access: runtime.access.policy,
    ...(runtime.pva ? { pva: runtime.pva } : {}),
  });
  cleanups.push(() => web.stop());
  const { security, audit } = runtime.access;
  const app = listenRest(
    {
      controller,
      version: VERSION,
      apiToken: config.apiToken,
      logger,
      routes: [accessRoutes({ security, audit })],
      onMutation: (m) => auditRequest(audit, m),
      compat: compat.adapter,
      cors: compat.env.cors,
      pvProxy: compat.pvProxy,
      // The docs page's viewer script is served from the executable (closed networks).
      docsViewer: OFFLINE_SCALAR,
    },
    config,
    ctx.idleTimeoutSec,
    web,
  );
  const httpPort = app.server?.port ?? config.port;
  cleanups.unshift(async () => {
    await app.stop(true);
  });
  logger.info(
    { host: config.host, port: httpPort },
    `REST API on http://${config.host}:${httpPort}/api/v1 (docs at /api/v1/docs)`,
  );
  return httpPort;
}

/** Serves REST for `controller` on the configured host and port. */
function listenRest(deps: AppDeps, config: ServerConfig, idleTimeoutSec: number, web: WebParts) {
  const api = createApp(deps).use(web.api);
  // The REST app lives under /api/v1; the console, /metrics and the PV Web Socket from `/`.
  // normalize: false as in createApp: a mounted app compiles its routes with the root's options,
  // and the default would strip unknown request fields instead of refusing them (422).
  const app = new Elysia({
    normalize: false,
    websocket: PVWS_WEBSOCKET_CONFIG,
    serve: { routes: WEB_SERVE_ROUTES },
  })
    .use(web.root)
    .use(api);
  try {
    app.listen({
      hostname: config.host,
      port: config.port,
      // Backstop only: the app answers 413 in its own JSON shape for anything over its limit,
      // so Bun's plain-text refusal is left for absurd sizes.
      maxRequestBodySize: DEFAULT_BODY_LIMIT * 128,
      idleTimeout: idleTimeoutSec,
      // Elysia turns SO_REUSEPORT on; a second iocmng on the same port must fail, not share it.
      reusePort: false,
      // The console page is an HTML import: serve its production bundle, not Bun's dev server.
      development: false,
    });
  } catch (e) {
    throw new Error(
      `REST API cannot listen on ${config.host}:${config.port} (IOCMNG_HOST/IOCMNG_PORT): ${errorMessage(e)}`,
    );
  }
  return app;
}
