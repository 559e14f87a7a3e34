/**
 * One spare plugin process, started ahead of need: an add whose plugin gets the default limits
 * takes it instead of waiting for a process to start (the largest part of an add's `load` step),
 * and a new spare starts behind it. The spare is started exactly as that plugin's own process
 * would be (same executable, limits, uid/gid, empty environment, private directory, cgroup) and
 * runs no plugin code until it is handed over, so the plugin that gets it can learn nothing it
 * could not learn from a process of its own: a spare serves one plugin and is never given back.
 * A spare that dies (killed by another plugin of the same uid, say) is simply replaced, later and
 * later if it keeps dying. `sandbox.spare: false` turns this off (docs/security.md).
 *
 * A spare costs an idle IOC a process (~9 MB PSS), so it exists only while adds come: the first
 * add after boot starts one ({@link SpareHost.fill}; that add takes it, still starting, and the
 * next one starts behind it for the following adds), and a spare no add asked for during
 * `idleMs` is ended until the next add. A boot restore starts none.
 */
import type { Logger } from "pino";
import {
  DEFAULT_HOST_TIMINGS,
  type HostEvents,
  type HostOptions,
  type PluginHost,
  type PluginHostFactory,
} from "../host.ts";
import { PluginProcess, startProcessHost } from "./process-host.ts";
import { defaultSandboxConfig, effectiveLimits, pluginEnv, type SandboxConfig } from "./sandbox.ts";

/** Longest wait before replacing a spare that keeps dying. */
const MAX_RETRY_MS = 60_000;

/** How long a spare is kept after the last add that asked for one. */
export const SPARE_IDLE_MS = 60_000;

/** What must be equal for a spare to stand in for a plugin's own process. */
function shape(sandbox: SandboxConfig, limits = effectiveLimits(sandbox, undefined)): string {
  const { uid, gid, passEnv } = sandbox;
  return JSON.stringify({ uid, gid, passEnv: [...passEnv].sort(), limits });
}

/**
 * The environment a plugin process started now would get (but its private directory): a spare
 * started earlier fits only if it got the same (a variable hidden or changed since: it does not).
 */
function envNow(sandbox: SandboxConfig, hidden: readonly string[]): string {
  const env = pluginEnv(process.env, { home: "", passEnv: sandbox.passEnv, hidden });
  return JSON.stringify(Object.entries(env).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** The spare of one server: {@link take} hands it over, {@link fill} starts the next one. */
export class SpareHost {
  private spare: PluginProcess | null = null;
  /** The environment the spare started with (envNow). */
  private spareEnv = "";
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Ends the spare `idleMs` after the last fill() (the last add that asked for one). */
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  /** Adds came within `idleMs`: keep a spare (and replace it when taken or dead). */
  private wanted = false;
  /** Spares that died unused since one was last handed out (each waits longer to be replaced). */
  private deaths = 0;
  private closed = false;
  private readonly shape: string;

  constructor(
    private readonly log: Logger,
    private readonly sandbox: SandboxConfig,
    /** Variables hidden from plugins right now (every pat_env name known). */
    private readonly hiddenEnv: () => readonly string[],
    private readonly idleMs = SPARE_IDLE_MS,
  ) {
    this.shape = shape(sandbox);
  }

  /** The spare's pid, or null (tests, docs/benchmarks.md's idle cost). */
  get pid(): number | null {
    return this.spare?.pid ?? null;
  }

  /**
   * An add is coming: starts a spare unless one is there or due, and keeps one ready (replaced
   * when taken or dead) until `idleMs` pass without another fill().
   */
  fill(): void {
    if (this.closed) return;
    this.wanted = true;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.retire(), this.idleMs);
    this.idleTimer.unref?.();
    this.start();
  }

  /** No add for `idleMs`: the spare ends and is not replaced until the next fill(). */
  private retire(): void {
    this.idleTimer = null;
    this.wanted = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const s = this.spare;
    this.spare = null;
    if (s === null) return;
    this.log.debug({ pid: s.pid, idleMs: this.idleMs }, "spare plugin process retired: no add");
    s.terminate();
  }

  /** Starts a spare if one is wanted and none is there or due. */
  private start(): void {
    if (this.closed || !this.wanted || this.spare !== null || this.timer !== null) return;
    const log = this.log.child({ plugin: "(spare)" });
    const events: HostEvents = {
      onSet: () => {},
      onAddPv: async () => {
        throw new Error("a spare process has no plugin");
      },
      onUnresponsive: () => {},
      onResponsive: () => {},
      onExit: (_code, reason) => this.died(spare, reason),
    };
    const hiddenEnv = this.hiddenEnv();
    const spare: PluginProcess = new PluginProcess(log, events, DEFAULT_HOST_TIMINGS, {
      name: "spare",
      sandbox: this.sandbox,
      limits: effectiveLimits(this.sandbox, undefined),
      hiddenEnv,
      spare: true,
    });
    this.spare = spare;
    this.spareEnv = envNow(this.sandbox, hiddenEnv);
    spare.waitReady().then(
      () => log.debug({ pid: spare.pid }, "spare plugin process ready"),
      () => {},
    );
  }

  private died(spare: PluginProcess, reason: string): void {
    if (this.spare !== spare) return;
    this.spare = null;
    this.deaths++;
    const delay = Math.min(MAX_RETRY_MS, 500 * 2 ** this.deaths);
    this.log.warn({ reason, retryMs: delay }, "spare plugin process ended unused: replacing it");
    this.timer = setTimeout(() => {
      this.timer = null;
      this.start();
    }, delay);
    this.timer.unref?.();
  }

  /**
   * The spare, handed to the plugin `o` describes, when it was started exactly as that plugin's
   * process would be (then the next spare starts); else null: the caller starts a process of its
   * own.
   */
  take(o: HostOptions): PluginHost | null {
    const spare = this.spare;
    // None: no add asked for one yet or lately (only adds on a booted server fill: a boot restore
    // and `iocmng run` never need one), or dead and due for replacement.
    if (this.closed || spare === null) return null;
    const sandbox = o.sandbox ?? defaultSandboxConfig();
    if (shape(sandbox, o.limits ?? effectiveLimits(sandbox, undefined)) !== this.shape) {
      return null;
    }
    // The same environment as a process started now: a variable hidden since (a token variable
    // became known) or changed since, and the spare fits no plugin any more.
    const stale = envNow(sandbox, o.hiddenEnv ?? []) !== this.spareEnv;
    if (stale || spare.isEnded || spare.isUnresponsive) {
      this.discard();
      return null;
    }
    this.spare = null;
    // Only a spare that served counts as a success: one killed each time it is ready (another
    // plugin of the same uid can) must not make the server start a process every second.
    this.deaths = 0;
    spare.adopt({
      log: o.log,
      events: o.events,
      timings: o.timings,
      name: o.name ?? "plugin",
      hiddenEnv: o.hiddenEnv,
      codeDirs: o.codeDirs,
    });
    this.start();
    return spare;
  }

  private discard(): void {
    const s = this.spare;
    this.spare = null;
    s?.terminate();
    this.start();
  }

  /** Ends the spare for good (server shutdown). */
  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.spare?.terminate();
    this.spare = null;
  }
}

/** A host factory that hands out `spares` when they fit, else starts a process of its own. */
export function withSpares(spares: SpareHost): PluginHostFactory {
  return (o) => spares.take(o) ?? startProcessHost(o);
}
