import type { Logger } from "pino";
import { createApp, DEFAULT_BODY_LIMIT } from "./api/app.ts";
import { CaServer, type CaServerConfig, caServerConfigFromEnv } from "./ca/server/index.ts";
import { errorMessage } from "./common/errors.ts";
import type { ServerConfig } from "./config.ts";
import { PluginController } from "./plugins/controller.ts";
import type { PluginHostFactory } from "./plugins/host.ts";
import type { RuntimeTimings } from "./plugins/plugin.ts";
import { PvRegistry } from "./pv/registry.ts";
import { PvaServer, type PvaServerConfig, pvaServerConfigFromEnv } from "./pva/server/index.ts";
import { StateStore } from "./state/index.ts";
import { VERSION } from "./version.ts";

/** Options of {@link buildRuntime}. */
export interface RuntimeOptions {
  /** CA settings over those of the environment; `false`: no CA server (PVs in the registry only). */
  caConfig?: Partial<CaServerConfig> | false;
  /**
   * pvAccess settings over those of the environment (EPICS_PVAS_*); `false`: no PVA server. On by
   * default next to CA; IOCMNG_DISABLE_PVA=true turns it off. A runtime built with `caConfig: false`
   * and no `pvaConfig` serves no protocol at all (the plugin tests' runtime).
   */
  pvaConfig?: Partial<PvaServerConfig> | false;
  /** Environment the CA config is read from (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** Serve this registry (default a new one). */
  registry?: PvRegistry;
  timings?: Partial<RuntimeTimings>;
  hostFactory?: PluginHostFactory;
}

/** The runtime without REST: PV registry, CA server, state store and plugin controller. */
export interface Runtime {
  registry: PvRegistry;
  /** Null when built with `caConfig: false`. */
  ca: CaServer | null;
  /** Null when PVA is off (`pvaConfig: false`, IOCMNG_DISABLE_PVA=true, or no CA and no PVA config). */
  pva: PvaServer | null;
  state: StateStore;
  controller: PluginController;
  /** Stops the plugins (cleanup()), flushes state, stops CA, in that order; one failing does not skip the others. */
  stop(): Promise<void>;
}

/**
 * The composition root: registry → CA server (started) → state store → plugin controller. Plugins
 * are not restored here (the caller decides when: `serve` before REST listens, `iocmng run`
 * never). `serve`, `iocmng run` and the tests build the runtime through this.
 */
export async function buildRuntime(
  config: ServerConfig,
  logger: Logger,
  opts: RuntimeOptions = {},
): Promise<Runtime> {
  const registry = opts.registry ?? new PvRegistry();
  let ca: CaServer | null = null;
  if (opts.caConfig !== false) {
    const caConfig: CaServerConfig = {
      ...caServerConfigFromEnv(opts.env ?? process.env),
      ...opts.caConfig,
    };
    ca = new CaServer({ registry, logger, config: caConfig });
    await ca.start();
  }
  let pva: PvaServer | null = null;
  try {
    pva = await startPva(registry, logger, opts);
  } catch (e) {
    await ca?.stop();
    throw e;
  }
  let state: StateStore;
  let controller: PluginController;
  try {
    state = new StateStore(config.stateDir, logger.child({ component: "state" }));
    controller = new PluginController({
      registry,
      config,
      state,
      logger,
      ...(opts.timings !== undefined ? { timings: opts.timings } : {}),
      ...(opts.hostFactory !== undefined ? { hostFactory: opts.hostFactory } : {}),
    });
  } catch (e) {
    await ca?.stop();
    await pva?.stop();
    throw e;
  }
  const stop = () =>
    runAll(
      [() => controller.shutdown(), () => state.flush(), () => ca?.stop(), () => pva?.stop()],
      logger,
    );
  return { registry, ca, pva, state, controller, stop };
}

/** The pvAccess server next to CA (docs/pva.md), unless turned off. */
async function startPva(
  registry: PvRegistry,
  logger: Logger,
  opts: RuntimeOptions,
): Promise<PvaServer | null> {
  const env = opts.env ?? process.env;
  if (opts.pvaConfig === false || /^(1|true|yes|on)$/i.test(env.IOCMNG_DISABLE_PVA ?? ""))
    return null;
  if (opts.caConfig === false && opts.pvaConfig === undefined) return null;
  const pva = new PvaServer({
    source: registry,
    logger,
    config: { ...pvaServerConfigFromEnv(env), ...opts.pvaConfig },
  });
  await pva.start();
  return pva;
}

/** Options of {@link startServer} beyond the server config (tests pick CA ports here). */
export interface StartOptions {
  caConfig?: Partial<CaServerConfig>;
  /** pvAccess settings over the environment's; `false`: no PVA server (see RuntimeOptions). */
  pvaConfig?: Partial<PvaServerConfig> | false;
  /** Environment the CA config is read from (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** Seconds an HTTP connection may stay idle (default 30); adds and job runs are exempt. */
  httpIdleTimeoutSec?: number;
  /**
   * Install the SIGTERM/SIGINT handlers ({@link installSignalHandlers}) as soon as the CA server is
   * up, before the plugins are restored: a signal during a slow boot still stops cleanly (exit 0).
   * `true` for the process defaults; an object to inject the exit and grace time (tests).
   */
  signals?: boolean | { exit?: (code: number) => void; graceMs?: number };
}

/** Thrown by {@link startServer} when a signal (or `stop`) arrived before the server was up. */
export class StartAbortedError extends Error {
  constructor() {
    super("stopped before the server finished starting");
    this.name = "StartAbortedError";
  }
}

/** A started iocmng: where it listens, its parts, and how to stop it. */
export interface RunningServer {
  httpPort: number;
  caTcpPort: number;
  caUdpPort: number;
  /** PVA TCP port, or null when PVA is off. */
  pvaTcpPort: number | null;
  controller: PluginController;
  registry: PvRegistry;
  /** Stops REST, plugins (cleanup()), state writes and CA, in that order. Idempotent. */
  stop(): Promise<void>;
}

/** True when `host` only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The startup warning for an unauthenticated API reachable from other hosts, or null. */
export function securityWarning(config: Pick<ServerConfig, "host" | "apiToken">): string | null {
  if (config.apiToken !== null || isLoopbackHost(config.host)) return null;
  return `IOCMNG_API_TOKEN is not set and the REST API listens on ${config.host}, beyond this machine: anyone who can reach it can load and run code here. Set IOCMNG_API_TOKEN, or IOCMNG_HOST=127.0.0.1.`;
}

/**
 * The composition root: builds the PV registry, the CA server, the state store and the plugin
 * controller, restores plugins, then serves REST. REST listens only after `restore()` so that a
 * passing health check means the persisted plugins are back.
 */
export async function startServer(
  config: ServerConfig,
  logger: Logger,
  opts: StartOptions = {},
): Promise<RunningServer> {
  const runtime = await buildRuntime(config, logger, {
    env: opts.env ?? process.env,
    ...(opts.caConfig !== undefined ? { caConfig: opts.caConfig } : {}),
    ...(opts.pvaConfig !== undefined ? { pvaConfig: opts.pvaConfig } : {}),
  });
  const { controller, registry } = runtime;
  const ca = runtime.ca as CaServer;
  const cleanups: Array<() => Promise<void> | void> = [() => runtime.stop()];
  let uninstallSignals = (): void => {};
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= runAll(cleanups, logger).finally(() => uninstallSignals());
    return stopping;
  };
  if (opts.signals) {
    uninstallSignals = installSignalHandlers(
      { stop },
      logger,
      opts.signals === true ? {} : opts.signals,
    );
  }
  try {
    await controller.restore();
    // A signal during the restore already stopped everything: do not start listening.
    if (stopping !== null) {
      await stopping;
      throw new StartAbortedError();
    }

    const warning = securityWarning(config);
    if (warning !== null) logger.warn({ host: config.host }, warning);

    const app = listenRest(controller, config, logger, opts.httpIdleTimeoutSec ?? 30);
    const httpPort = app.server?.port ?? config.port;
    cleanups.unshift(async () => {
      await app.stop(true);
    });
    logger.info(
      { host: config.host, port: httpPort },
      `REST API on http://${config.host}:${httpPort}/api/v1 (docs at /api/v1/docs)`,
    );
    logger.info(
      { tcpPort: ca.tcpPort, udpPort: ca.udpPort },
      `Channel Access server on TCP ${ca.tcpPort}, UDP ${ca.udpPort}`,
    );

    return {
      httpPort,
      caTcpPort: ca.tcpPort,
      caUdpPort: ca.udpPort,
      pvaTcpPort: runtime.pva?.tcpPort ?? null,
      controller,
      registry,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Serves REST for `controller` on the configured host and port. */
function listenRest(
  controller: PluginController,
  config: ServerConfig,
  logger: Logger,
  idleTimeoutSec: number,
) {
  const app = createApp({ controller, version: VERSION, apiToken: config.apiToken, logger });
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
    });
  } catch (e) {
    throw new Error(
      `REST API cannot listen on ${config.host}:${config.port} (IOCMNG_HOST/IOCMNG_PORT): ${errorMessage(e)}`,
    );
  }
  return app;
}

/** Runs every cleanup in order; one failing does not skip the others. */
async function runAll(cleanups: Array<() => Promise<void> | void>, logger: Logger): Promise<void> {
  for (const c of cleanups) {
    try {
      await c();
    } catch (err) {
      logger.error({ err }, "error during shutdown");
    }
  }
}

/** How long a signal-triggered shutdown may take before the process exits anyway. */
export const SHUTDOWN_GRACE_MS = 4500;

/**
 * SIGTERM/SIGINT: stop the server (loops, cleanup(), CA clients) and exit 0; exit 1 if that takes
 * longer than {@link SHUTDOWN_GRACE_MS} or on a second signal. Returns a function that uninstalls.
 */
export function installSignalHandlers(
  server: Pick<RunningServer, "stop">,
  logger: Logger,
  opts: { exit?: (code: number) => void; graceMs?: number } = {},
): () => void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const graceMs = opts.graceMs ?? SHUTDOWN_GRACE_MS;
  let started = false;
  let hard: ReturnType<typeof setTimeout> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (started) {
      logger.warn({ signal }, "second signal during shutdown: exiting now");
      exit(1);
      return;
    }
    started = true;
    logger.info({ signal }, "shutting down");
    hard = setTimeout(() => {
      logger.error({ graceMs }, "shutdown took too long: exiting anyway");
      exit(1);
    }, graceMs);
    server.stop().then(
      () => {
        clearTimeout(hard);
        logger.info("stopped");
        logger.flush?.();
        exit(0);
      },
      (err: unknown) => {
        clearTimeout(hard);
        logger.error({ err }, "shutdown failed");
        exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return () => {
    clearTimeout(hard);
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  };
}
