/**
 * PluginController: the plugin runtime's front door (the REST API and the CLI call it). It keeps
 * the lifecycle: which plugins are loaded, which names are busy, add / remove / restart / run /
 * restore / shutdown. Loading is the pipeline's (pipeline.ts), the PV ↔ plugin wiring the
 * bridge's (bridge.ts); plugin code runs in a host (host.ts). A failed add leaves nothing behind.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { type AddRequest, addRequestProblem } from "../common/add-request.ts";
import { JobHistory } from "../compat/job-history.ts";
import type { ServerConfig } from "../config.ts";
import { pvPrefixFor } from "../config.ts";
import type { PvRegistry } from "../pv/registry.ts";
import type { PvValue } from "../pv/types.ts";
import type { PluginRecord, StateStore } from "../state/index.ts";
import { jsonValue, messageText, PvBridge, showFailure } from "./bridge.ts";
import { defaultPvDefs, loadPluginConfig, resolveParameters } from "./config.ts";
import { removeOrphanClones } from "./host/orphans.ts";
import { EndedHost } from "./host/process-host.ts";
import { reapStale } from "./host/reap.ts";
import { decideRestart } from "./host/restart.ts";
import { defaultSandboxConfig, effectiveLimits } from "./host/sandbox.ts";
import { PAT_ENV_REFUSED, patEnvAllowed } from "./host/settings.ts";
import type { PluginHost, PluginHostFactory } from "./host.ts";
import { defaultHostFactory } from "./host-default.ts";
import { JOB_RPC_SUFFIX, type JobRpcPort, replyOf, runParameters } from "./job-rpc.ts";
import { resolvePluginDir } from "./loader.ts";
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
  sourceOf,
} from "./plugin.ts";
import { AddProgress } from "./progress.ts";
import { StepError, type StepObserver, Steps } from "./report.ts";
import type {
  JobResultJson,
  OpResult,
  PluginInfo,
  PluginPvInfo,
  ValidationReport,
} from "./types.ts";

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

/** Plugins restored in parallel at boot. */
const RESTORE_CONCURRENCY = 4;

/** The failure of an add whose plugin was deleted before it finished loading. */
export const REMOVED_WHILE_LOADING = "removed while loading";

/** How long shutdown waits for pipelines in progress to undo their work. */
const SHUTDOWN_INFLIGHT_WAIT_MS = 1500;

/** "no task named "x"" with the name cut to a readable length. */
function noSuch(what: string, name: unknown): { ok: false; code: 404; message: string } {
  return { ok: false, code: 404, message: `no ${what} named "${String(name).slice(0, 140)}"` };
}

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

  constructor(private readonly deps: ControllerDeps) {
    this.timings = { ...DEFAULT_TIMINGS, ...deps.timings };
    this.log = deps.logger.child({ component: "plugins" });
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
    const bad = addRequestProblem(req)?.message;
    if (bad) {
      const validation = new Steps().report(new StepError("request", bad));
      return { ok: false, code: 400, message: bad, validation };
    }
    if (req.pat_env !== undefined && !patEnvAllowed(this.deps.config.patEnvAllow, req.pat_env)) {
      // 422, and neither the variable's value nor its name comes back (it may be a probe).
      return { ok: false, code: 422, message: PAT_ENV_REFUSED };
    }
    if (this.shuttingDown) return { ok: false, code: 409, message: "server is shutting down" };
    const key = req.name.toLowerCase();
    const existing = this.plugins.get(key);
    if (existing || this.busy.has(key)) {
      const what = existing
        ? `a ${existing.kind} named "${existing.name}" already exists`
        : `"${req.name}" is being changed right now`;
      return {
        ok: false,
        code: 409,
        message: `name taken: ${what} (names are case-insensitive: PV prefixes are upper case)`,
      };
    }
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

  private async persist(p: LoadedPlugin): Promise<void> {
    const rec: PluginRecord = {
      ...sourceOf(p),
      parameters: p.overrides,
      auto_start: p.auto_start,
      cloneDir: p.cloneDir,
      addedAt: p.addedAt,
      ...(p.quarantined ? { quarantined: p.quarantined } : {}),
    };
    try {
      await this.deps.state.putPlugin(rec);
    } catch (err) {
      this.log.error({ err, plugin: p.name }, "cannot persist plugin record");
    }
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
      hostFactory: this.deps.hostFactory ?? defaultHostFactory,
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
  private async stopPlugin(p: LoadedPlugin): Promise<void> {
    if (p.stopped) return;
    p.stopped = true;
    clearTimeout(p.respawnTimer);
    if (!p.host.isUnresponsive && !p.host.isEnded) {
      await p.host.request(
        { t: "stop", cleanupTimeoutMs: this.timings.cleanupTimeoutMs },
        this.timings.cleanupTimeoutMs + 300,
      );
    }
    p.host.terminate();
    for (const u of p.unsubs) u();
    for (const { pv } of p.pvs.values()) this.deps.registry.remove(pv.name);
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
    const statusPv = p.pvs.get("STATUS")?.pv;
    const idx = typeof statusPv?.value === "number" ? statusPv.value : 0;
    const status = statusPv?.meta.states?.[idx] ?? String(idx);
    const pvs: PluginPvInfo[] = [...p.pvs.values()].map(({ short, pv }) => ({
      name: short,
      fullName: pv.name,
      kind: pv.kind,
      writable: pv.writable,
      value: jsonValue(pv.value),
      status: pv.status,
      severity: pv.severity,
    }));
    const cc = p.pvs.get("CYCLE_COUNT")?.pv.value;
    return {
      name: p.name,
      kind: p.kind,
      ...(p.kind === "task" ? { mode: p.declarative?.mode ?? p.mode } : {}),
      status,
      message: String(p.pvs.get("MESSAGE")?.pv.value ?? ""),
      ...(p.kind === "task" ? { cycleCount: typeof cc === "number" ? cc : 0 } : {}),
      prefix: p.prefix,
      git_url: p.git_url,
      ...(p.branch !== undefined ? { branch: p.branch } : {}),
      ...(p.path !== undefined ? { path: p.path } : {}),
      parameters: p.parameters,
      pvs,
      running:
        !p.stopped && p.startError === undefined && !p.host.isEnded && !p.host.isUnresponsive,
      ...(p.quarantined ? { quarantined: p.quarantined } : {}),
      ...(p.kind === "job" ? { results: this.history.get(p.name) } : {}),
      plugin_type: p.kind,
      class_name: p.className ?? null,
    };
  }

  /** Makes a started job callable as `PREFIX:RUN`; the channel goes with the plugin's unsubs. */
  private exposeJob(p: LoadedPlugin): void {
    const port = this.deps.jobRpc;
    const status = p.pvs.get("STATUS")?.pv.name;
    if (!port || status === undefined) return;
    const channel = `${p.prefix}:${JOB_RPC_SUFFIX}`;
    const off = port.register(
      channel,
      async (call) => {
        const parameters = runParameters(p.parameters, call.args);
        this.log.info(
          { plugin: p.name, peer: call.peer, user: call.user, args: Object.keys(parameters) },
          `job ${p.name} run by RPC`,
        );
        // By name, as REST does: a job removed or restarted since is not this closure's `p`.
        return replyOf(await this.runJob(p.name, parameters));
      },
      status,
    );
    p.unsubs.push(off);
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
    if (p.jobBusy) return { ok: false, code: 409, message: `job ${p.name} is already running` };
    if (p.stopped) return { ok: false, code: 409, message: `job ${p.name} is being removed` };
    p.jobBusy = true;
    try {
      const r = await p.host.request(
        parameters === undefined ? { t: "runJob" } : { t: "runJob", parameters },
      );
      if (!r.ok) return { ok: false, code: 500, message: r.message };
      const result = r.data as JobResultJson;
      this.history.add(p.name, result);
      return { ok: true, message: result.message, value: result };
    } finally {
      p.jobBusy = false;
    }
  }

  /** Re-clones and reloads a plugin; PV values are kept. On failure the old version is reloaded. */
  async restart(name: string): Promise<OpResult<PluginInfo>> {
    const old = this.find(name);
    if (!old) return noSuch("plugin", name);
    const key = old.name.toLowerCase();
    if (this.busy.has(key))
      return { ok: false, code: 409, message: `"${old.name}" is being changed right now` };
    this.busy.add(key);
    try {
      const pat = old.pat ?? this.patFromEnv(old.pat_env);
      const spec = loadSpec(old, {
        overrides: old.overrides,
        auto_start: old.auto_start,
        pat,
        addedAt: old.addedAt,
      });
      const keep = new Map<string, PvValue>();
      for (const [short, { pv }] of old.pvs) {
        if (short !== "STATUS" && short !== "MESSAGE" && short !== "RUN") keep.set(short, pv.value);
      }
      await this.stopPlugin(old);
      this.plugins.delete(key);
      const r = await this.pipeline(spec, { from: "git" }, keep);
      if (r.ok && r.plugin !== undefined) {
        await this.persist(r.plugin);
        await rm(old.cloneDir, { recursive: true, force: true }).catch(() => {});
        return {
          ok: true,
          message: `${old.kind} ${old.name} restarted`,
          value: this.info(r.plugin),
          validation: r.report,
        };
      }
      // Bring the previous version back from its clone so a bad push does not lose the plugin.
      const back = await this.pipeline(spec, { from: "disk", cloneDir: old.cloneDir }, keep);
      if (!back.ok)
        this.log.error(
          { plugin: old.name },
          `previous version could not be reloaded: ${back.report.message}`,
        );
      const outcome = !back.ok
        ? "plugin unloaded"
        : back.plugin?.startError === undefined
          ? "previous version reloaded"
          : "previous version reloaded but not started";
      return {
        ok: false,
        code: 422,
        message: `restart failed (${outcome}): ${r.report.message}`,
        validation: r.report,
      };
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

  /** Boot: plugins from state (on-disk clones, no network) then those declared in config. */
  async restore(): Promise<void> {
    // What plugin processes of a previous server (killed with -9) left running, and their dirs.
    const reaped = reapStale();
    if (reaped > 0)
      this.log.warn({ reaped }, "killed processes left by a previous server's plugins");
    const { plugins, warnings } = await this.deps.state.load();
    for (const w of warnings) this.log.warn(w);
    // Not after a damaged state file: its plugins' clones are still the operator's way back.
    if (warnings.length === 0)
      await removeOrphanClones(this.deps.config.pluginsDir, plugins, this.log);
    // A few at a time: boot is mostly waiting on host start-up and imports.
    const queue = [...plugins];
    const lanes = Array.from({ length: Math.min(RESTORE_CONCURRENCY, queue.length) }, async () => {
      for (let rec = queue.shift(); rec; rec = queue.shift()) await this.restoreOne(rec);
    });
    await Promise.all(lanes);
    for (const d of this.deps.config.plugins) {
      if (this.shuttingDown) break;
      const cur = this.find(d.name);
      if (
        cur &&
        cur.kind === d.kind &&
        cur.git_url === d.git_url &&
        cur.branch === d.branch &&
        cur.path === d.path
      ) {
        continue;
      }
      if (cur) await this.remove(cur.kind, cur.name);
      const r = await this.add({ ...d });
      if (!r.ok) this.log.error({ plugin: d.name }, `declared plugin not loaded: ${r.message}`);
    }
  }

  /** A running plugin's process ended by itself: restart it later, or quarantine it. */
  private onProcessEnd(p: LoadedPlugin, failed: boolean, log: Logger): void {
    const d = decideRestart(p.restart, failed, p.failures, Date.now(), this.timings);
    if (d.action === "quarantine") {
      p.quarantined = d.reason;
      p.pvs.get("MESSAGE")?.pv.post(messageText(d.reason));
      log.error(`${d.reason}: not restarted until a restart through REST`);
      void this.persist(p);
    } else if (d.action === "restart") {
      log.warn({ delayMs: d.delayMs }, "plugin process ended: restarting it");
      p.respawnTimer = setTimeout(() => void this.respawn(p, log), d.delayMs);
    }
  }

  /** A new process for a running plugin, with its PVs kept (clients stay connected). */
  private async respawn(p: LoadedPlugin, log: Logger): Promise<void> {
    p.respawnTimer = undefined;
    if (p.stopped || this.shuttingDown || this.plugins.get(p.name.toLowerCase()) !== p) return;
    const host = (this.deps.hostFactory ?? defaultHostFactory)({
      log,
      events: this.bridge.hostEvents(p, log),
      timings: {
        readyTimeoutMs: this.timings.importTimeoutMs,
        watchdogMs: this.timings.watchdogMs,
      },
      hiddenEnv: this.tokenEnvNames(),
      name: p.name,
      sandbox: this.deps.config.sandbox ?? defaultSandboxConfig(),
      limits: p.limits,
      codeDirs: [p.cloneDir],
    });
    // The plugin's host from now on: a removal during the respawn ends this one too.
    p.host = host;
    const fail = (message: string): void => {
      host.terminate();
      if (p.stopped) return;
      showFailure(p, `restart failed: ${message}`);
      this.onProcessEnd(p, true, log);
    };
    try {
      await host.waitReady();
    } catch (e) {
      return fail(e instanceof Error ? e.message : String(e));
    }
    if (p.stopped) return host.terminate();
    const lr = await host.request(
      { t: "load", files: p.files, kind: p.kind },
      this.timings.importTimeoutMs,
    );
    if (!lr.ok) return fail(lr.message);
    // PVs the previous process made with addPv are adopted when its initialize() adds them again.
    const pvs = this.bridge.hostPvs(p);
    for (const [short, pp] of p.pvs) {
      if (pp.runtime) {
        delete pvs[short];
        pp.adoptable = true;
      }
    }
    if (p.stopped) return host.terminate();
    const cfg = this.deps.config;
    const sr = await host.request(
      {
        t: "start",
        name: p.name,
        kind: p.kind,
        prefix: p.prefix,
        parameters: p.parameters,
        mode: p.mode,
        interval: p.interval,
        enabled: p.kind === "task" ? p.pvs.get("ENABLE")?.pv.value !== 0 : true,
        pvs,
        services: {
          beamlineValues: cfg.beamlineValues,
          beamline: cfg.beamline,
          namespace: cfg.namespace,
          devices: !cfg.disableDevices,
        },
        initTimeoutMs: this.timings.initTimeoutMs,
      },
      this.timings.initTimeoutMs + 2000,
    );
    if (!sr.ok) return fail(sr.message);
    if (p.stopped) host.terminate();
    else log.info("plugin process restarted");
  }

  /**
   * Boot: lists a quarantined plugin in ERROR with its PVs (values from autosave) and no process;
   * none of its code runs. A REST restart re-clones and clears the quarantine; DELETE removes it.
   */
  private async restoreHeld(rec: PluginRecord): Promise<void> {
    const dir = await resolvePluginDir(rec.cloneDir, rec.path);
    const cfg = await loadPluginConfig(dir, rec.kind);
    const resolved = resolveParameters(cfg, rec.parameters ?? {});
    const p: LoadedPlugin = {
      ...loadSpec(rec, {
        overrides: rec.parameters ?? {},
        auto_start: rec.auto_start,
        addedAt: rec.addedAt,
      }),
      mode: resolved.mode,
      interval: resolved.interval,
      prefix: pvPrefixFor(this.deps.config, rec.name),
      parameters: resolved.parameters,
      cloneDir: rec.cloneDir,
      pluginDir: dir,
      host: new EndedHost(rec.quarantined ?? "quarantined"),
      limits: effectiveLimits(this.deps.config.sandbox ?? defaultSandboxConfig(), cfg.limits),
      restart: cfg.restart ?? "on-failure",
      failures: [],
      files: [],
      pvs: new Map(),
      unsubs: [],
      autosaved: await this.deps.state.loadAutosave(rec.name).catch(() => ({})),
      beforeWatchdog: null,
      triggerBusy: false,
      jobBusy: false,
      stopped: false,
      ...(rec.quarantined ? { quarantined: rec.quarantined, startError: rec.quarantined } : {}),
    };
    const created: string[] = [];
    try {
      for (const def of [...defaultPvDefs(rec.kind), ...cfg.pvs]) {
        const pv = this.deps.registry.add(
          { ...def.spec, name: `${p.prefix}:${def.name}` },
          this.bridge.writeHandler(p, def.name),
        );
        created.push(pv.name);
        p.pvs.set(def.name, { short: def.name, pv, autosave: def.autosave });
      }
    } catch (e) {
      for (const n of created) this.deps.registry.remove(n);
      throw e;
    }
    this.bridge.restoreValues(p, null, this.log);
    showFailure(p, p.quarantined ?? "quarantined");
    this.plugins.set(rec.name.toLowerCase(), p);
    this.log.warn({ plugin: rec.name }, `${rec.name} is quarantined: listed, not started`);
  }

  /** Stops every plugin (cleanup(), bounded) and removes their PVs; records stay for next boot. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
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
    if (this.inflight.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...this.inflight]),
        new Promise<void>((ok) => {
          timer = setTimeout(ok, SHUTDOWN_INFLIGHT_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
  }
}

/** A set whose adds and deletes also go to a second set (a per-add set of hosts + the shared one). */
class TeeSet<T> extends Set<T> {
  constructor(
    private readonly own: Set<T>,
    private readonly shared: Set<T>,
  ) {
    super();
  }
  override add(v: T): this {
    this.own?.add(v);
    this.shared?.add(v);
    return super.add(v);
  }
  override delete(v: T): boolean {
    this.own?.delete(v);
    this.shared?.delete(v);
    return super.delete(v);
  }
}
