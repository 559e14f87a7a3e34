/**
 * PluginController: the plugin runtime's front door (the REST API and the CLI call it). It keeps
 * the lifecycle: which plugins are loaded, which names are busy, add / remove / restart / run /
 * restore / shutdown. Loading is the pipeline's (pipeline.ts), the PV ↔ plugin wiring the
 * bridge's (bridge.ts); plugin code runs in a host (host.ts). A failed add leaves nothing behind.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import type { AddRequest } from "../common/add-request.ts";
import { JobHistory } from "../compat/job-history.ts";
import type { ServerConfig } from "../config.ts";
import type { PvRegistry } from "../pv/registry.ts";
import type { PvValue } from "../pv/types.ts";
import type { PluginRecord, StateStore } from "../state/index.ts";
import { addRefusal } from "./add-checks.ts";
import { bootRestore } from "./boot-restore.ts";
import { PvBridge } from "./bridge.ts";
import { defaultSandboxConfig } from "./host/sandbox.ts";
import { patEnvAllowed } from "./host/settings.ts";
import { SpareHost, withSpares } from "./host/spare.ts";
import type { PluginHost, PluginHostFactory } from "./host.ts";
import { defaultHostFactory } from "./host-default.ts";
import { exposeJob, runJobOnce } from "./job-expose.ts";
import type { JobRpcPort } from "./job-rpc.ts";
import {
  type PipelineOutcome,
  type PipelineSource,
  runPipeline,
  type ServerSide,
} from "./pipeline.ts";
import {
  DEFAULT_TIMINGS,
  type LoadedPlugin,
  type LoadSpec,
  loadSpec,
  type RuntimeTimings,
} from "./plugin.ts";
import { noSuch, pluginInfo } from "./plugin-info.ts";
import { AddProgress } from "./progress.ts";
import { persistPlugin } from "./record.ts";
import { reloadPlugin } from "./reload.ts";
import { type StepObserver, Steps } from "./report.ts";
import { onProcessEnd, stopPlugin } from "./respawn.ts";
import { loadHeldPlugin } from "./restore-held.ts";
import { settleWithin, TeeSet } from "./tee-set.ts";
import type { JobResultJson, OpResult, PluginInfo, ValidationReport } from "./types.ts";

export type { AddRequest } from "../common/add-request.ts";
export { MAX_PVS_PER_PLUGIN } from "./bridge.ts";
export { DEFAULT_TIMINGS, type RuntimeTimings } from "./plugin.ts";
export type {
  JobResultJson,
  OpResult,
  PluginInfo,
  PluginPvInfo,
  ValidationReport,
  ValidationStep,
} from "./types.ts";
export { validatePluginSource } from "./validate.ts";

/** Dependencies of the controller. */
export interface ControllerDeps {
  registry: PvRegistry;
  config: ServerConfig;
  state: StateStore;
  logger: Logger;
  timings?: Partial<RuntimeTimings>;
  /** Where plugin code runs (default: host-default.ts). */
  hostFactory?: PluginHostFactory;
  /** Where a started job's run is exposed as an RPC (`PREFIX:RUN`, job-rpc.ts); none: not exposed. */
  jobRpc?: JobRpcPort;
}

/** The failure of an add whose plugin was deleted before it finished loading. */
export const REMOVED_WHILE_LOADING = "removed while loading";

/** How long shutdown waits for pipelines in progress to undo their work. */
const SHUTDOWN_INFLIGHT_WAIT_MS = 1500;

/** Loads, runs and removes plugins; owns their hosts and PVs. */
export class PluginController {
  /** The last results of each job (GET /jobs/{name}, /jobs/{name}/results). */
  private readonly history = new JobHistory();
  /** Steps of adds in flight, live (the console's add page). */
  readonly progress = new AddProgress();
  private readonly plugins = new Map<string, LoadedPlugin>();
  /** Names (lower case) with an operation in progress: add, remove, restart. */
  private readonly busy = new Set<string>();
  private readonly timings: RuntimeTimings;
  private readonly log: Logger;
  private readonly bridge: PvBridge;
  private readonly server: ServerSide;
  private shuttingDown = false;
  /** Every pat_env name seen (kept: hiding a token variable from all plugins costs nothing). */
  private readonly knownTokenEnv = new Set<string>();
  /** Hosts of plugins still in the pipeline (boot restore, an add): shutdown ends them. */
  private readonly loadingHosts = new Set<PluginHost>();
  /** Adds in progress by name (lower case): DELETE aborts them (cloning, installing, init…). */
  private readonly loading = new Map<
    string,
    { kind: "task" | "job"; abort: AbortController; hosts: Set<PluginHost>; done: Promise<unknown> }
  >();
  /** Pipelines in progress, so shutdown can wait (bounded) for them to undo their work. */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Aborted by shutdown: kills clones and installs in progress. */
  private readonly stopSignal = new AbortController();
  /** The pre-started plugin process of the next add (none with a caller's host factory). */
  private readonly spares: SpareHost | null;
  /** restore() finished: adds from now on want a spare. */
  private booted = false;
  private readonly hostFactory: PluginHostFactory;

  constructor(private readonly deps: ControllerDeps) {
    this.timings = { ...DEFAULT_TIMINGS, ...deps.timings };
    this.log = deps.logger.child({ component: "plugins" });
    const sandbox = deps.config.sandbox ?? defaultSandboxConfig();
    this.spares =
      deps.hostFactory === undefined && sandbox.spare
        ? new SpareHost(this.log, sandbox, () => this.tokenEnvNames(), this.timings.spareIdleMs)
        : null;
    this.hostFactory =
      deps.hostFactory ?? (this.spares ? withSpares(this.spares) : defaultHostFactory);
    this.bridge = new PvBridge({
      registry: deps.registry,
      state: deps.state,
      logger: this.log,
      writeTimeoutMs: this.timings.writeTimeoutMs,
      onProcessEnd: (p, code, log) => {
        // Only a listed plugin is restarted; one still in the pipeline fails its add instead.
        if (this.plugins.get(p.name.toLowerCase()) === p) this.onProcessEnd(p, code !== 0, log);
      },
    });
    this.server = {
      config: deps.config,
      registry: deps.registry,
      state: deps.state,
      bridge: this.bridge,
      signal: this.stopSignal.signal,
      isShuttingDown: () => this.shuttingDown,
      tokenEnvNames: () => this.tokenEnvNames(),
      loadingHosts: this.loadingHosts,
      register: (p) => {
        this.plugins.set(p.name.toLowerCase(), p);
        if (p.kind === "job" && p.startError === undefined) this.exposeJob(p);
      },
    };
  }

  private find(name: string): LoadedPlugin | undefined {
    return typeof name === "string" ? this.plugins.get(name.toLowerCase()) : undefined;
  }

  /** Full pipeline; persists the record on success (409 name taken, 422 validation, 400 input). */
  async add(req: AddRequest, opts: { detectKind?: boolean } = {}): Promise<OpResult<PluginInfo>> {
    const refused = addRefusal(req, {
      patEnvAllow: this.deps.config.patEnvAllow,
      shuttingDown: this.shuttingDown,
      existing: (k) => this.plugins.get(k),
      busy: (k) => this.busy.has(k),
    });
    if (refused) return refused;
    // A spare process for this add (taken once cloned) and the next ones (ends when adds stop).
    if (this.booted) this.spares?.fill();
    const key = req.name.toLowerCase();
    let pat = req.pat;
    if (pat === undefined && req.pat_env) pat = process.env[req.pat_env];
    this.busy.add(key);
    const abort = new AbortController();
    const hosts = new Set<PluginHost>();
    // The console streams the steps while the add runs (GET /plugins/{name}/progress).
    this.progress.begin(req.name);
    let report: ValidationReport | undefined;
    try {
      const spec = loadSpec(req, {
        overrides: req.parameters ?? {},
        auto_start: req.auto_start ?? true,
        pat,
        addedAt: new Date().toISOString(),
      });
      const run = this.pipeline(
        spec,
        { from: "git" },
        null,
        { abort: abort.signal, hosts, observer: (s) => this.progress.step(req.name, s) },
        opts.detectKind === true,
      );
      this.loading.set(key, { kind: req.kind, abort, hosts, done: run });
      const r = await run;
      report = r.report;
      if (abort.signal.aborted) {
        // DELETE came while it loaded: whatever got this far goes too.
        const got = r.ok ? r.plugin : undefined;
        if (got) {
          await this.stopPlugin(got);
          this.plugins.delete(key);
          await rm(join(this.deps.config.pluginsDir, got.name), { recursive: true, force: true });
        }
        return { ok: false, code: 409, message: REMOVED_WHILE_LOADING, validation: r.report };
      }
      if (!r.ok || r.plugin === undefined) {
        // A failure outside the pipeline's checks (disk full, permissions…) is the server's fault.
        const code = r.report.failedStep === "internal" ? 500 : 422;
        return { ok: false, code, message: r.report.message, validation: r.report };
      }
      await this.persist(r.plugin);
      return {
        ok: true,
        message: `${r.plugin.kind} ${req.name} loaded`,
        value: this.info(r.plugin),
        validation: r.report,
      };
    } finally {
      this.progress.end(
        req.name,
        report ?? { ok: false, message: "add failed unexpectedly", steps: [] },
      );
      this.loading.delete(key);
      this.busy.delete(key);
    }
  }

  private persist(p: LoadedPlugin): Promise<void> {
    return persistPlugin(this.deps.state, p, this.log);
  }

  /**
   * Runs the pipeline for `spec`: `from: "git"` clones into a fresh directory; `from: "disk"`
   * reuses a clone (boot restore, no network). `keep` carries PV values across a restart.
   */
  private pipeline(
    spec: LoadSpec,
    source: PipelineSource,
    keep: Map<string, PvValue> | null,
    own?: { abort: AbortSignal; hosts: Set<PluginHost>; observer?: StepObserver },
    detectKind = false,
  ): Promise<PipelineOutcome> {
    if (spec.pat_env) this.knownTokenEnv.add(spec.pat_env);
    // An add of its own: DELETE aborts its clone/install and ends its host (tracked in `hosts`).
    const server: ServerSide = own
      ? {
          ...this.server,
          signal: AbortSignal.any([this.stopSignal.signal, own.abort]),
          loadingHosts: new TeeSet(own.hosts, this.loadingHosts),
        }
      : this.server;
    own?.abort.addEventListener("abort", () => {
      for (const h of own.hosts) h.terminate();
    });
    const run = runPipeline({
      spec,
      source,
      kind: spec.kind,
      detectKind,
      keep,
      server,
      timings: this.timings,
      hostFactory: this.hostFactory,
      steps: new Steps(own?.observer),
      log: this.deps.logger.child({ plugin: spec.name }),
      undo: [],
      always: [],
    });
    this.inflight.add(run);
    const done = () => this.inflight.delete(run);
    run.then(done, done);
    return run;
  }

  /** The token in variable `name`, when the operator allows it as a pat_env (else none). */
  private patFromEnv(name: string | undefined): string | undefined {
    if (!name || !patEnvAllowed(this.deps.config.patEnvAllow, name)) return undefined;
    return process.env[name];
  }

  /** Names of every environment variable known to hold a git token (pat_env of any plugin). */
  private tokenEnvNames(): string[] {
    const names = new Set<string>(this.deps.config.patEnvAllow ?? []);
    for (const d of this.deps.config.plugins) if (d.pat_env) names.add(d.pat_env);
    for (const n of this.knownTokenEnv) names.add(n);
    return [...names];
  }

  /** Stops a plugin's host (cleanup() bounded), then removes its PVs. Never throws. */
  private stopPlugin(p: LoadedPlugin): Promise<void> {
    return stopPlugin(p, this.timings, this.deps.registry);
  }

  /** Stops and removes a plugin; ends within 2 s even for a hung plugin. */
  async remove(kind: "task" | "job", name: string): Promise<OpResult> {
    const inflight = typeof name === "string" ? this.loading.get(name.toLowerCase()) : undefined;
    if (inflight && inflight.kind === kind) {
      // Cloning, installing, importing or in initialize(): the add fails and undoes its work.
      inflight.abort.abort();
      await inflight.done.catch(() => {});
      this.log.info({ plugin: name }, `${kind} ${name} removed while loading`);
      return { ok: true, message: `${kind} ${name} removed while loading`, value: undefined };
    }
    const p = this.find(name);
    if (!p || p.kind !== kind) return noSuch(kind, name);
    const key = p.name.toLowerCase();
    if (this.busy.has(key))
      return { ok: false, code: 409, message: `"${p.name}" is being changed right now` };
    this.busy.add(key);
    try {
      await this.stopPlugin(p);
      this.plugins.delete(key);
      await Promise.all([
        this.deps.state
          .removePlugin(p.name)
          .catch((err: unknown) => this.log.error({ err }, "state: remove failed")),
        this.deps.state
          .dropAutosave(p.name)
          .catch((err: unknown) => this.log.error({ err }, "state: autosave drop failed")),
        rm(join(this.deps.config.pluginsDir, p.name), { recursive: true, force: true }).catch(
          () => {},
        ),
      ]);
      this.history.forget(p.name);
      this.log.info({ plugin: p.name }, `${kind} ${p.name} removed`);
      return { ok: true, message: `${kind} ${p.name} removed`, value: undefined };
    } finally {
      this.busy.delete(key);
    }
  }

  /** The last results of a job, newest last (undefined when no such job). */
  jobResults(name: string): JobResultJson[] | undefined {
    const p = this.find(name);
    return p?.kind === "job" ? this.history.get(p.name) : undefined;
  }

  /** Every loaded plugin as the runtime holds it (read-only view for the 2.7.9 adapter). */
  loadedPlugins(): readonly LoadedPlugin[] {
    return [...this.plugins.values()];
  }

  /** Plugins of one kind, sorted by name. */
  list(kind: "task" | "job"): PluginInfo[] {
    return [...this.plugins.values()]
      .filter((p) => p.kind === kind)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => this.info(p));
  }

  /** The OS pid of a listed plugin's process, or null (not running, or not a process). */
  pidOf(name: string): number | null {
    const p = this.find(name);
    if (p === undefined || p.host.isEnded) return null;
    return p.host.pid ?? null;
  }

  /** The plugin serving PV `pvName` (for the audit trail), or undefined. */
  pluginOfPv(pvName: string): string | undefined {
    for (const p of this.plugins.values()) {
      if (pvName.length > p.prefix.length && pvName.startsWith(`${p.prefix}:`)) return p.name;
    }
    return undefined;
  }

  /** One plugin, or undefined. */
  get(kind: "task" | "job", name: string): PluginInfo | undefined {
    const p = this.find(name);
    return p && p.kind === kind ? this.info(p) : undefined;
  }

  private info(p: LoadedPlugin): PluginInfo {
    return pluginInfo(p, this.history);
  }

  /** Makes a started job callable as `PREFIX:RUN`; the channel goes with the plugin's unsubs. */
  private exposeJob(p: LoadedPlugin): void {
    exposeJob(this.deps.jobRpc, p, this.log, (name, parameters) => this.runJob(name, parameters));
  }

  /**
   * Runs a job once (404 unknown, 409 already running). `parameters` (an RPC call's arguments)
   * overlay the job's own for this run only.
   */
  async runJob(
    name: string,
    parameters?: Record<string, unknown>,
  ): Promise<OpResult<JobResultJson>> {
    const p = this.find(name);
    if (p?.kind !== "job") return noSuch("job", name);
    return runJobOnce(p, this.history, parameters);
  }

  /** Re-clones and reloads a plugin (reload.ts): PV values kept, the old version back on failure. */
  async restart(name: string): Promise<OpResult<PluginInfo>> {
    const old = this.find(name);
    if (!old) return noSuch("plugin", name);
    const key = old.name.toLowerCase();
    if (this.busy.has(key))
      return { ok: false, code: 409, message: `"${old.name}" is being changed right now` };
    this.busy.add(key);
    try {
      return await reloadPlugin(old, {
        log: this.log,
        pat: old.pat ?? this.patFromEnv(old.pat_env),
        stop: (p) => this.stopPlugin(p),
        unlist: () => this.plugins.delete(key),
        pipeline: (spec, source, keep) => this.pipeline(spec, source, keep),
        persist: (p) => this.persist(p),
        info: (p) => this.info(p),
      });
    } finally {
      this.busy.delete(key);
    }
  }

  /** Loads one persisted plugin from its clone on disk (boot). */
  private async restoreOne(rec: PluginRecord): Promise<void> {
    const key = rec.name.toLowerCase();
    if (this.shuttingDown || this.plugins.has(key) || this.busy.has(key)) return;
    if (rec.quarantined) {
      await this.restoreHeld(rec).catch((err: unknown) =>
        this.log.error({ err, plugin: rec.name }, "quarantined plugin not listed"),
      );
      return;
    }
    const pat = this.patFromEnv(rec.pat_env);
    this.busy.add(key);
    try {
      const spec = loadSpec(rec, {
        overrides: rec.parameters ?? {},
        auto_start: rec.auto_start,
        pat,
        addedAt: rec.addedAt,
      });
      const r = await this.pipeline(spec, { from: "disk", cloneDir: rec.cloneDir }, null);
      if (!r.ok) this.log.error({ plugin: rec.name }, `not restored: ${r.report.message}`);
    } finally {
      this.busy.delete(key);
    }
  }

  /**
   * Boot: plugins from state (on-disk clones, no network) then those declared in config.
   * `onPlugins` is called before the first of them, if there is any (the server's CA warm-up).
   */
  async restore(opts: { onPlugins?: () => void } = {}): Promise<void> {
    await bootRestore({
      ...opts,
      config: this.deps.config,
      state: this.deps.state,
      log: this.log,
      isShuttingDown: () => this.shuttingDown,
      restoreOne: (rec) => this.restoreOne(rec),
      find: (name) => this.find(name),
      add: (d) => this.add(d),
      remove: (kind, name) => this.remove(kind, name),
    });
    // From now on an add starts the spare; the restore starts none (no idle process; spare.ts).
    this.booted = true;
  }

  /** A running plugin's process ended by itself: restart it later, or quarantine it. */
  private onProcessEnd(p: LoadedPlugin, failed: boolean, log: Logger): void {
    onProcessEnd(p, failed, log, {
      config: this.deps.config,
      bridge: this.bridge,
      timings: this.timings,
      hostFactory: this.hostFactory,
      tokenEnvNames: () => this.tokenEnvNames(),
      persist: (q) => this.persist(q),
      current: (q) => !this.shuttingDown && this.plugins.get(q.name.toLowerCase()) === q,
    });
  }

  /**
   * Boot: lists a quarantined plugin in ERROR with its PVs (values from autosave) and no process;
   * none of its code runs. A REST restart re-clones and clears the quarantine; DELETE removes it.
   */
  private async restoreHeld(rec: PluginRecord): Promise<void> {
    const p = await loadHeldPlugin(rec, {
      config: this.deps.config,
      registry: this.deps.registry,
      state: this.deps.state,
      bridge: this.bridge,
      log: this.log,
    });
    this.plugins.set(rec.name.toLowerCase(), p);
    this.log.warn({ plugin: rec.name }, `${rec.name} is quarantined: listed, not started`);
  }

  /** Stops every plugin (cleanup(), bounded) and removes their PVs; records stay for next boot. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.spares?.close();
    // Plugins still loading (a slow initialize() during the boot restore, an add in flight) end
    // at once: their pipeline then fails and removes what it created; the wait for that is
    // bounded, so a signal still exits within its grace time.
    for (const h of this.loadingHosts) h.terminate();
    for (const l of this.loading.values()) for (const h of l.hosts) h.terminate();
    // A clone or an install in progress is killed too: its add fails and cleans up at once.
    this.stopSignal.abort();
    const all = [...this.plugins.values()];
    this.plugins.clear();
    await Promise.all(all.map((p) => this.stopPlugin(p)));
    if (this.inflight.size > 0) await settleWithin([...this.inflight], SHUTDOWN_INFLIGHT_WAIT_MS);
  }
}
