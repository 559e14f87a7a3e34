import type { Logger } from "pino";
import { type AccessRuntime, startAccess } from "./access/runtime.ts";
import { CaServer, type CaServerConfig, caServerConfigFromEnv } from "./ca/server/index.ts";
import { warmupEnabled } from "./ca/server/warmup.ts";
import { errorMessage } from "./common/errors.ts";
import { raiseServingThread, rtPriorityFromEnv } from "./common/realtime.ts";
import { SearchWorker } from "./common/search-worker.ts";
import { type CompatWiring, compatWiring } from "./compat/wiring.ts";
import type { ServerConfig } from "./config.ts";
import { PluginController } from "./plugins/controller.ts";
import type { PluginHostFactory } from "./plugins/host.ts";
import type { JobRpcPort } from "./plugins/job-rpc.ts";
import type { RuntimeTimings } from "./plugins/plugin.ts";
import { type AccessPolicy, RIGHTS } from "./pv/access.ts";
import { PvRegistry } from "./pv/registry.ts";
import { scalar, struct, TypeCode } from "./pva/codec/types.ts";
import {
  inferType,
  inferValue,
  PvaServer,
  type PvaServerConfig,
  pvaServerConfigFromEnv,
  pvaWarmupEnabled,
} from "./pva/server/index.ts";
import { serveHttp } from "./server-http.ts";
import { StateStore } from "./state/index.ts";
import { VERSION } from "./version.ts";
import { LogRings, tapLogger } from "./web/logring.ts";

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
  /** Plugin log lines also go to these bounded rings (console, /plugins/{name}/logs). */
  logs?: LogRings;
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
  /** Access security (IOCMNG_ACF), the audit trail and the policy the CA server applies. */
  access: AccessRuntime;
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
  // First: a malformed access security file stops the start here, with its line and column.
  const access = await startAccess(
    { file: config.accessSecurityFile, hostMode: config.accessHostMode },
    registry,
    logger,
  );
  const { ca, pva } = await startProtocols(registry, logger, opts, access);
  let state: StateStore;
  let controller: PluginController;
  try {
    state = new StateStore(config.stateDir, logger.child({ component: "state" }));
    controller = new PluginController({
      registry,
      config,
      state,
      logger: opts.logs ? tapLogger(logger, opts.logs) : logger,
      ...(opts.timings !== undefined ? { timings: opts.timings } : {}),
      ...(opts.hostFactory !== undefined ? { hostFactory: opts.hostFactory } : {}),
      ...(pva ? { jobRpc: jobRpcOver(pva, registry, access.policy) } : {}),
    });
  } catch (e) {
    await ca?.stop();
    await pva?.stop();
    access.close();
    throw e;
  }
  access.setPluginOf((pv) => controller.pluginOfPv(pv));
  const stop = () =>
    runAll(
      [
        () => controller.shutdown(),
        () => state.flush(),
        () => ca?.stop(),
        () => pva?.stop(),
        () => access.close(),
      ],
      logger,
    );
  return { registry, ca, pva, state, controller, access, stop };
}

/**
 * Starts the CA and the pvAccess servers side by side: each waits for its search thread to boot
 * and bind, and waiting for both at once shortens the start (docs/benchmarks.md, cold start). Both
 * search threads run in one search Worker (src/common/search-worker.ts): one JS engine instead of
 * two (docs/benchmarks.md, "Product-path memory"). If either fails, the other is stopped and access
 * security closed; CA's error is the one thrown when both fail, as when they started one after the
 * other.
 */
async function startProtocols(
  registry: PvRegistry,
  logger: Logger,
  opts: RuntimeOptions,
  access: AccessRuntime,
): Promise<{ ca: CaServer | null; pva: PvaServer | null }> {
  let ca: CaServer | null = null;
  const searchWorker = new SearchWorker(logger);
  if (opts.caConfig !== false) {
    const caConfig: CaServerConfig = {
      ...caServerConfigFromEnv(opts.env ?? process.env),
      ...opts.caConfig,
    };
    ca = new CaServer({
      registry,
      logger,
      config: caConfig,
      access: access.policy,
      searchWorker,
    });
  }
  const [caStarted, pvaStarted] = await Promise.allSettled([
    ca?.start(),
    startPva(registry, logger, opts, access.policy, searchWorker),
  ]);
  if (caStarted.status === "fulfilled" && pvaStarted.status === "fulfilled") {
    return { ca, pva: pvaStarted.value };
  }
  if (caStarted.status === "fulfilled") await ca?.stop();
  if (pvaStarted.status === "fulfilled") await pvaStarted.value?.stop();
  access.close();
  throw caStarted.status === "rejected"
    ? caStarted.reason
    : (pvaStarted as PromiseRejectedResult).reason;
}

/** The pvAccess server next to CA (docs/pva.md), unless turned off. */
async function startPva(
  registry: PvRegistry,
  logger: Logger,
  opts: RuntimeOptions,
  access: AccessPolicy,
  searchWorker: SearchWorker,
): Promise<PvaServer | null> {
  const env = opts.env ?? process.env;
  if (opts.pvaConfig === false || /^(1|true|yes|on)$/i.test(env.IOCMNG_DISABLE_PVA ?? ""))
    return null;
  if (opts.caConfig === false && opts.pvaConfig === undefined) return null;
  const pva = new PvaServer({
    source: registry,
    logger,
    config: { ...pvaServerConfigFromEnv(env), ...opts.pvaConfig },
    access,
    version: `iocmng ${VERSION} (Bun ${Bun.version})`,
    searchWorker,
  });
  await pva.start();
  return pva;
}

/**
 * Job runs as PVA RPCs (src/plugins/job-rpc.ts): the reply is an `iocmng:job/Result:1.0`
 * structure, `success`, `message`, `timestamp` and the job's `data` with inferred types. The
 * caller needs WRITE on the guard PV (the job's STATUS) under access security.
 */
function jobRpcOver(pva: PvaServer, registry: PvRegistry, access: AccessPolicy): JobRpcPort {
  return {
    register: (name, handler, guardPv) =>
      pva.rpc.register(name, async (req) => {
        const guard = registry.get(guardPv);
        const ip = req.peer.slice(0, req.peer.lastIndexOf(":"));
        const who = access.identify(req.user, req.host, ip);
        if (!guard || (access.rights(guard, who) & RIGHTS.WRITE) === 0) {
          throw new Error(`access denied: ${who.user}@${who.host} may not write ${guardPv}`);
        }
        const r = await handler({ args: req.args, user: req.user, host: req.host, peer: req.peer });
        const data = inferValue(r.data);
        const type = struct("iocmng:job/Result:1.0", [
          ["success", scalar(TypeCode.BOOLEAN)],
          ["message", scalar(TypeCode.STRING)],
          ["timestamp", scalar(TypeCode.STRING)],
          ["data", inferType(data)],
        ]);
        return { type, value: { ...r, data } };
      }),
  };
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
  /**
   * SCHED_FIFO priority for this process's main thread, which serves CA, PVA and REST (0 = normal
   * scheduling; default: IOCMNG_RT_PRIORITY, else 0). `iocmng serve` passes DEFAULT_RT_PRIORITY
   * when the variable is unset (src/common/realtime.ts, docs/ca-server.md §Scheduling).
   */
  rtPriority?: number;
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
  const logs = new LogRings();
  // Read before anything starts: a bad value stops the start with the variable's name.
  const warmup = warmupEnabled(opts.env ?? process.env);
  const pvaWarmup = pvaWarmupEnabled(opts.env ?? process.env);
  const rtPriority = opts.rtPriority ?? rtPriorityFromEnv(opts.env ?? process.env) ?? 0;
  const runtime = await buildRuntime(config, logger, {
    env: opts.env ?? process.env,
    logs,
    ...(opts.caConfig !== undefined ? { caConfig: opts.caConfig } : {}),
    ...(opts.pvaConfig !== undefined ? { pvaConfig: opts.pvaConfig } : {}),
  });
  const { controller, registry } = runtime;
  const ca = runtime.ca as CaServer;
  // After the search threads started (they stay at normal priority), before the warm-up and the
  // restore; plugin processes never inherit it (SCHED_RESET_ON_FORK).
  raiseServingThread(rtPriority, logger, "CA/PVA server");
  let compat: CompatWiring;
  try {
    compat = compatWiring(config, controller, opts.env ?? process.env, logger);
  } catch (e) {
    await runtime.stop();
    throw e;
  }
  const cleanups: Array<() => Promise<void> | void> = [() => runtime.stop()];
  let uninstallSignals = (): void => {};
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= runAll(cleanups, logger).finally(() => uninstallSignals());
    return stopping;
  };
  if (opts.signals) uninstallSignals = wireSignals(opts.signals, stop, runtime, logger);
  try {
    // The CA warm-up runs in the idle time of a plugin restore when there is one (the first storm
    // after a restart meets compiled code), else once REST listens: with nothing to restore, its
    // slices would only delay the start (docs/benchmarks.md, cold start).
    const startWarmup = warmupOnce(
      { ca: warmup, pva: pvaWarmup },
      ca,
      runtime.pva,
      logger,
      () => stopping !== null,
    );
    await controller.restore({ onPlugins: startWarmup });
    // IOCMNG_PLUGINS_CONFIG (2.7.9's plugins.yaml): what the state did not bring back, in order.
    if (compat.env.pluginsConfig !== null) startWarmup();
    await compat.loadBootList();
    // A signal during the restore already stopped everything: do not start listening.
    if (stopping !== null) {
      await stopping;
      throw new StartAbortedError();
    }

    const warning = securityWarning(config);
    if (warning !== null) logger.warn({ host: config.host }, warning);

    const httpPort = serveHttp(runtime, compat, {
      config,
      logger,
      logs,
      cleanups,
      idleTimeoutSec: opts.httpIdleTimeoutSec ?? 30,
    });
    logger.info(
      { tcpPort: ca.tcpPort, udpPort: ca.udpPort },
      `Channel Access server on TCP ${ca.tcpPort}, UDP ${ca.udpPort}`,
    );
    startWarmup();

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

/**
 * Starts the CA warm-up, then the PVA one (src/pva/server/warmup.ts), on the first call (none when
 * disabled or stopping); they yield to the first real clients and log what they did. One after the
 * other: together they would only compete for the same thread.
 */
function warmupOnce(
  enabled: { ca: boolean; pva: boolean },
  ca: CaServer,
  pva: PvaServer | null,
  logger: Logger,
  stopping: () => boolean,
): () => void {
  let started = !enabled.ca && !(enabled.pva && pva);
  const step = async (name: string, run: () => Promise<object>): Promise<void> => {
    try {
      logger.info({ ...(await run()) }, `${name} hot paths warmed up`);
    } catch (e) {
      logger.warn({ err: errorMessage(e) }, `${name} warm-up failed`);
    }
  };
  return () => {
    if (started || stopping()) return;
    started = true;
    void (async () => {
      if (enabled.ca) await step("CA", () => ca.warmUp());
      if (enabled.pva && pva && !stopping()) await step("PVA", () => pva.warmUp());
    })();
  };
}

/** SIGTERM/SIGINT stop the server, SIGHUP reloads access security; returns the uninstaller. */
function wireSignals(
  signals: Exclude<StartOptions["signals"], false | undefined>,
  stop: () => Promise<void>,
  runtime: Runtime,
  logger: Logger,
): () => void {
  const uninstallStop = installSignalHandlers({ stop }, logger, signals === true ? {} : signals);
  const uninstallHup = runtime.access.installSighup();
  return () => {
    uninstallStop();
    uninstallHup();
  };
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
