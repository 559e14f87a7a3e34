/**
 * The process side of a listed plugin, for the controller: stopping it, and giving it a new
 * process after its own ended (the restart policy, host/restart.ts, decides when).
 */
import type { Logger } from "pino";
import type { ServerConfig } from "../config.ts";
import type { PvRegistry } from "../pv/registry.ts";
import { messageText, type PvBridge, showFailure } from "./bridge.ts";
import { decideRestart } from "./host/restart.ts";
import { defaultSandboxConfig } from "./host/sandbox.ts";
import type { PluginHostFactory } from "./host.ts";
import type { LoadedPlugin, RuntimeTimings } from "./plugin.ts";
import { startRequest } from "./start-request.ts";

/** Stops a plugin's host (cleanup() bounded), then removes its PVs. Never throws. */
export async function stopPlugin(
  p: LoadedPlugin,
  timings: RuntimeTimings,
  registry: PvRegistry,
): Promise<void> {
  if (p.stopped) return;
  p.stopped = true;
  clearTimeout(p.respawnTimer);
  if (!p.host.isUnresponsive && !p.host.isEnded) {
    await p.host.request(
      { t: "stop", cleanupTimeoutMs: timings.cleanupTimeoutMs },
      timings.cleanupTimeoutMs + 300,
    );
  }
  p.host.terminate();
  for (const u of p.unsubs) u();
  for (const { pv } of p.pvs.values()) registry.remove(pv.name);
}

/** What a respawn needs from the controller. */
export interface RespawnContext {
  config: ServerConfig;
  bridge: PvBridge;
  timings: RuntimeTimings;
  hostFactory: PluginHostFactory;
  tokenEnvNames: () => string[];
  /** A new process failed: the restart policy decides again. */
  onFailed: (p: LoadedPlugin, log: Logger) => void;
}

/** A new process for a running plugin, with its PVs kept (clients stay connected). */
export async function respawnPlugin(
  p: LoadedPlugin,
  log: Logger,
  ctx: RespawnContext,
): Promise<void> {
  const { timings, bridge } = ctx;
  const host = ctx.hostFactory({
    log,
    events: bridge.hostEvents(p, log),
    timings: { readyTimeoutMs: timings.importTimeoutMs, watchdogMs: timings.watchdogMs },
    hiddenEnv: ctx.tokenEnvNames(),
    name: p.name,
    sandbox: ctx.config.sandbox ?? defaultSandboxConfig(),
    limits: p.limits,
    codeDirs: [p.cloneDir],
  });
  // The plugin's host from now on: a removal during the respawn ends this one too.
  p.host = host;
  const fail = (message: string): void => {
    host.terminate();
    if (p.stopped) return;
    showFailure(p, `restart failed: ${message}`);
    ctx.onFailed(p, log);
  };
  try {
    await host.waitReady();
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  if (p.stopped) return host.terminate();
  const lr = await host.request(
    { t: "load", files: p.files, kind: p.kind },
    timings.importTimeoutMs,
  );
  if (!lr.ok) return fail(lr.message);
  // PVs the previous process made with addPv are adopted when its initialize() adds them again.
  const pvs = bridge.hostPvs(p);
  for (const [short, pp] of p.pvs) {
    if (pp.runtime) {
      delete pvs[short];
      pp.adoptable = true;
    }
  }
  if (p.stopped) return host.terminate();
  const sr = await host.request(
    startRequest(p, ctx.config, pvs, timings.initTimeoutMs),
    timings.initTimeoutMs + 2000,
  );
  if (!sr.ok) return fail(sr.message);
  if (p.stopped) host.terminate();
  else log.info("plugin process restarted");
}

/** What the restart policy needs from the controller on top of a respawn's context. */
export interface ProcessEndContext extends Omit<RespawnContext, "onFailed"> {
  persist(p: LoadedPlugin): Promise<void>;
  /** Still listed and the server not shutting down: a respawn is due. */
  current(p: LoadedPlugin): boolean;
}

/** A running plugin's process ended by itself: restart it later, or quarantine it. */
export function onProcessEnd(
  p: LoadedPlugin,
  failed: boolean,
  log: Logger,
  ctx: ProcessEndContext,
): void {
  const d = decideRestart(p.restart, failed, p.failures, Date.now(), ctx.timings);
  if (d.action === "quarantine") {
    p.quarantined = d.reason;
    p.pvs.get("MESSAGE")?.pv.post(messageText(d.reason));
    log.error(`${d.reason}: not restarted until a restart through REST`);
    void ctx.persist(p);
  } else if (d.action === "restart") {
    log.warn({ delayMs: d.delayMs }, "plugin process ended: restarting it");
    p.respawnTimer = setTimeout(() => {
      p.respawnTimer = undefined;
      if (p.stopped || !ctx.current(p)) return;
      void respawnPlugin(p, log, {
        ...ctx,
        onFailed: (q, l) => onProcessEnd(q, true, l, ctx),
      });
    }, d.delayMs);
  }
}
