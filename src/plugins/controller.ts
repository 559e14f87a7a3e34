/**
 * PluginController: the plugin runtime's front door (the REST API and the CLI call it). It runs the
 * loader pipeline (clone → path → config → dependencies → syntax → import → inheritance → abstract
 * → PVs → start), owns each plugin's Worker and PVs, wires client writes to the plugin, autosaves
 * inputs, and removes plugins completely. A failed step leaves nothing behind.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { PLUGIN_NAME_RE, pvPrefixFor, type ServerConfig } from "../config.ts";
import type { DeclarativeSpec } from "../declarative/spec.ts";
import type { Pv } from "../pv/pv.ts";
import { PvSpecError } from "../pv/pv.ts";
import { PvRegistry } from "../pv/registry.ts";
import { DBE, type PvSpec, type PvValue } from "../pv/types.ts";
import type { PvDefinition } from "../sdk/host.ts";
import type { PluginRecord, StateStore } from "../state/index.ts";
import {
  defaultPvDefs,
  loadPluginConfig,
  PluginConfigError,
  PV_NAME_RE,
  type PvDef,
  pluginPvDefs,
  resolveParameters,
} from "./config.ts";
import { checkBranch, checkGitUrl, GitError, gitClone } from "./git.ts";
import {
  checkInsideClone,
  entryFiles,
  installDependencies,
  pluginMetaFiles,
  resolvePluginDir,
  StepError,
  syntaxCheck,
} from "./loader.ts";
import type { WorkerPvInfo } from "./protocol.ts";
import type {
  AddRequest,
  JobResultJson,
  OpResult,
  PipelineStep,
  PluginInfo,
  PluginPvInfo,
  ValidationReport,
  ValidationStep,
} from "./types.ts";
import { PluginWorker } from "./worker-host.ts";

export type {
  AddRequest,
  JobResultJson,
  OpResult,
  PluginInfo,
  PluginPvInfo,
  ValidationReport,
  ValidationStep,
} from "./types.ts";

/** Time limits of the runtime (tests shorten some). */
export interface RuntimeTimings {
  /** Importing the plugin's modules in its worker. */
  importTimeoutMs: number;
  /** The plugin's initialize(). */
  initTimeoutMs: number;
  /** cleanup() on remove/shutdown; the worker is terminated right after. */
  cleanupTimeoutMs: number;
  /** Missing heartbeats for this long → STATUS ERROR "unresponsive". */
  watchdogMs: number;
  /** A client write waiting for onPvWrite (ENABLE, inputs); RUN waits as long as execute(). */
  writeTimeoutMs: number;
  /** git clone. */
  cloneTimeoutMs: number;
  /** Dependency installation. */
  installTimeoutMs: number;
}

/** Defaults: removal completes within 2 s (1.2 s for cleanup, then terminate). */
export const DEFAULT_TIMINGS: RuntimeTimings = {
  importTimeoutMs: 30_000,
  initTimeoutMs: 30_000,
  cleanupTimeoutMs: 1200,
  watchdogMs: 3000,
  writeTimeoutMs: 30_000,
  cloneTimeoutMs: 120_000,
  installTimeoutMs: 300_000,
};

/** Dependencies of the controller. */
export interface ControllerDeps {
  registry: PvRegistry;
  config: ServerConfig;
  state: StateStore;
  logger: Logger;
  timings?: Partial<RuntimeTimings>;
}

/** Most PVs one plugin may have (declared plus addPv): a runaway addPv loop stops here. */
export const MAX_PVS_PER_PLUGIN = 10_000;

/** Plugins restored in parallel at boot. */
const RESTORE_CONCURRENCY = 4;

/** Longest MESSAGE (EPICS string). */
const MESSAGE_MAX = 39;

interface PluginPv {
  short: string;
  pv: Pv;
  autosave: boolean;
}

interface Loaded {
  name: string;
  kind: "task" | "job";
  mode: "continuous" | "triggered";
  /** A 2.7.9 declarative task's spec (its mode may be reactive). */
  declarative?: DeclarativeSpec;
  interval: number;
  prefix: string;
  git_url: string;
  branch?: string;
  path?: string;
  /** Effective parameters (config.yaml + overrides). */
  parameters: Record<string, unknown>;
  /** The overrides given at add time (what is persisted). */
  overrides: Record<string, unknown>;
  auto_start: boolean;
  pat?: string;
  pat_env?: string;
  cloneDir: string;
  pluginDir: string;
  addedAt: string;
  worker: PluginWorker;
  pvs: Map<string, PluginPv>;
  unsubs: Array<() => void>;
  /** Autosaved values read at load, for PVs created later with addPv. */
  autosaved: Record<string, unknown>;
  /** STATUS/MESSAGE before the watchdog overwrote them. */
  beforeWatchdog: { status: PvValue; message: PvValue } | null;
  triggerBusy: boolean;
  jobBusy: boolean;
  stopped: boolean;
  /** Set when start failed during a restore: loaded for inspection, not running. */
  startError?: string;
}

/** How long shutdown waits for pipelines in progress to undo their work. */
const SHUTDOWN_INFLIGHT_WAIT_MS = 1500;

/** What the pipeline needs to know about the plugin to load. */
interface LoadSpec {
  name: string;
  kind: "task" | "job";
  git_url: string;
  branch?: string;
  path?: string;
  overrides: Record<string, unknown>;
  auto_start: boolean;
  pat?: string;
  pat_env?: string;
  addedAt: string;
}

/** Where a plugin comes from: the fields shared by requests, records and loaded plugins. */
type PluginSource = Pick<LoadSpec, "name" | "kind" | "git_url" | "branch" | "path" | "pat_env">;

/** The source fields of `src`, optional ones only when set. */
function sourceOf(src: {
  name: string;
  kind: "task" | "job";
  git_url: string;
  branch?: string | undefined;
  path?: string | undefined;
  pat_env?: string | undefined;
}): PluginSource {
  return {
    name: src.name,
    kind: src.kind,
    git_url: src.git_url,
    ...(src.branch !== undefined ? { branch: src.branch } : {}),
    ...(src.path !== undefined ? { path: src.path } : {}),
    ...(src.pat_env ? { pat_env: src.pat_env } : {}),
  };
}

/** A LoadSpec from where a plugin comes from (REST request, record, loaded plugin). */
function loadSpec(
  src: Parameters<typeof sourceOf>[0],
  rest: Pick<LoadSpec, "overrides" | "auto_start" | "addedAt"> & { pat?: string | undefined },
): LoadSpec {
  return {
    ...sourceOf(src),
    overrides: rest.overrides,
    auto_start: rest.auto_start,
    ...(rest.pat ? { pat: rest.pat } : {}),
    addedAt: rest.addedAt,
  };
}

/** Records pipeline steps; `fail` ends the pipeline with a StepError. */
class Steps {
  readonly steps: ValidationStep[] = [];
  ok(step: PipelineStep, message: string): void {
    this.steps.push({ step, ok: true, message });
  }
  fail(step: PipelineStep, message: string): never {
    throw new StepError(step, message);
  }
  report(err?: unknown): ValidationReport {
    if (err === undefined) {
      return { ok: true, message: "plugin is valid", steps: this.steps };
    }
    const step: string = err instanceof StepError ? err.step : "internal";
    const message = err instanceof Error ? err.message : String(err);
    this.steps.push({ step, ok: false, message });
    return { ok: false, failedStep: step, message: `${step}: ${message}`, steps: this.steps };
  }
}

/** The `abstract` step's success line: the class and the methods it implements. */
function abstractOk(loadData: unknown, kind: "task" | "job"): string {
  const name = (loadData as { className?: unknown } | undefined)?.className;
  const methods =
    kind === "task" ? "initialize(), execute(), cleanup()" : "initialize(), execute()";
  return `${typeof name === "string" && name !== "" ? name : "the plugin class"} implements ${methods}`;
}

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** JSON-friendly copy of a PV value (typed arrays become arrays). */
function jsonValue(v: PvValue): unknown {
  if (typeof v === "object") return Array.from(v as ArrayLike<number>);
  return v;
}

function truncateMessage(s: string): string {
  const enc = new TextEncoder().encode(s);
  if (enc.length <= MESSAGE_MAX) return s;
  let end = MESSAGE_MAX;
  while (end > 0 && ((enc[end] ?? 0) & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(enc.subarray(0, end));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** Validates an add request; returns an error message or null. */
export function checkAddRequest(req: AddRequest): string | null {
  if (!isPlainObject(req)) return "request must be an object";
  if (typeof req.name !== "string" || !PLUGIN_NAME_RE.test(req.name)) {
    return `name must match ^[A-Za-z0-9_-]{1,128}$, got ${JSON.stringify(String(req.name).slice(0, 140))}`;
  }
  if (req.kind !== "task" && req.kind !== "job") return "kind must be 'task' or 'job'";
  const urlErr = checkGitUrl(req.git_url);
  if (urlErr) return urlErr;
  const brErr = checkBranch(req.branch);
  if (brErr) return brErr;
  if (req.path !== undefined && (typeof req.path !== "string" || req.path.length > 1024)) {
    return "path must be a string of at most 1024 characters";
  }
  if (req.parameters !== undefined && !isPlainObject(req.parameters)) {
    return "parameters must be an object";
  }
  if (req.pat !== undefined && (typeof req.pat !== "string" || req.pat.length > 4096)) {
    return "pat must be a string of at most 4096 characters";
  }
  if (req.pat !== undefined && /[\r\n\0]/.test(req.pat)) return "pat contains line breaks";
  if (
    req.pat_env !== undefined &&
    (typeof req.pat_env !== "string" || !ENV_NAME_RE.test(req.pat_env))
  ) {
    return "pat_env must be an environment variable name";
  }
  if (req.auto_start !== undefined && typeof req.auto_start !== "boolean") {
    return "auto_start must be a boolean";
  }
  return null;
}

/** Where the pipeline takes the plugin's files from: a fresh clone, or the clone already on disk. */
type PipelineSource =
  | { from: "git"; keep: Map<string, PvValue> | null }
  | { from: "disk"; cloneDir: string; keep: Map<string, PvValue> | null };

/** The pipeline's result: the loaded plugin, or the report naming the failed step. */
type PipelineOutcome =
  | { ok: true; loaded: Loaded; report: ValidationReport }
  | { ok: false; report: ValidationReport };

/** Loads, runs and removes plugins; owns their workers and PVs. */
export class PluginController {
  private readonly plugins = new Map<string, Loaded>();
  /** Names (lower case) with an operation in progress: add, remove, restart. */
  private readonly busy = new Set<string>();
  private readonly timings: RuntimeTimings;
  private readonly log: Logger;
  private shuttingDown = false;
  /** Every pat_env name seen (kept: hiding a token variable from all plugins costs nothing). */
  private readonly knownTokenEnv = new Set<string>();
  /** Workers of plugins still in the pipeline (boot restore, an add): shutdown ends them. */
  private readonly loadingWorkers = new Set<PluginWorker>();
  /** Pipelines in progress, so shutdown can wait (bounded) for them to undo their work. */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Aborted by shutdown: kills clones and installs in progress. */
  private readonly stopSignal = new AbortController();

  constructor(private readonly deps: ControllerDeps) {
    this.timings = { ...DEFAULT_TIMINGS, ...deps.timings };
    this.log = deps.logger.child({ component: "plugins" });
  }

  private find(name: string): Loaded | undefined {
    return this.plugins.get(name.toLowerCase());
  }

  /** Full pipeline; persists the record on success (409 name taken, 422 validation, 400 input). */
  async add(req: AddRequest): Promise<OpResult<PluginInfo>> {
    const steps = new Steps();
    const bad = checkAddRequest(req);
    if (bad)
      return {
        ok: false,
        code: 400,
        message: bad,
        validation: steps.report(new StepError("request", bad)),
      };
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
    try {
      const r = await this.pipeline(
        loadSpec(req, {
          overrides: req.parameters ?? {},
          auto_start: req.auto_start ?? true,
          pat,
          addedAt: new Date().toISOString(),
        }),
        steps,
        { from: "git", keep: null },
      );
      if (!r.ok) {
        // A failure outside the pipeline's checks (disk full, permissions…) is the server's fault.
        const code = r.report.failedStep === "internal" ? 500 : 422;
        return { ok: false, code, message: r.report.message, validation: r.report };
      }
      await this.persist(r.loaded);
      return {
        ok: true,
        message: `${req.kind} ${req.name} loaded`,
        value: this.info(r.loaded),
        validation: r.report,
      };
    } finally {
      this.busy.delete(key);
    }
  }

  private async persist(p: Loaded): Promise<void> {
    const rec: PluginRecord = {
      ...sourceOf(p),
      parameters: p.overrides,
      auto_start: p.auto_start,
      cloneDir: p.cloneDir,
      addedAt: p.addedAt,
    };
    try {
      await this.deps.state.putPlugin(rec);
    } catch (err) {
      this.log.error({ err, plugin: p.name }, "cannot persist plugin record");
    }
  }

  /**
   * The loader pipeline. `from: "git"` clones into a fresh directory; `from: "disk"` reuses
   * `cloneDir` (boot restore, no network). `keep` carries PV values across a restart.
   */
  private pipeline(spec: LoadSpec, steps: Steps, src: PipelineSource): Promise<PipelineOutcome> {
    const run = this.runPipeline(spec, steps, src);
    this.inflight.add(run);
    const done = () => this.inflight.delete(run);
    run.then(done, done);
    return run;
  }

  private async runPipeline(
    spec: LoadSpec,
    steps: Steps,
    src: PipelineSource,
  ): Promise<PipelineOutcome> {
    const log = this.deps.logger.child({ plugin: spec.name });
    let cloneDir: string | null = null;
    let worker: PluginWorker | null = null;
    const created: string[] = [];
    const unsubs: Array<() => void> = [];
    let loadedRef: Loaded | null = null;
    if (spec.pat_env) this.knownTokenEnv.add(spec.pat_env);
    try {
      // clone
      if (src.from === "git") {
        const parent = join(this.deps.config.pluginsDir, spec.name);
        await mkdir(parent, { recursive: true });
        cloneDir = join(parent, `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`);
        try {
          const { commit } = await gitClone({
            url: spec.git_url,
            dest: cloneDir,
            ...(spec.branch ? { branch: spec.branch } : {}),
            ...(spec.pat ? { pat: spec.pat } : {}),
            timeoutMs: this.timings.cloneTimeoutMs,
            signal: this.stopSignal.signal,
          });
          steps.ok(
            "clone",
            `cloned ${spec.branch ? `${spec.branch} ` : ""}at ${commit.slice(0, 12)}`,
          );
        } catch (e) {
          steps.fail("clone", e instanceof GitError ? e.message : `git clone failed: ${errMsg(e)}`);
        }
      } else {
        cloneDir = src.cloneDir;
        const ok = await stat(cloneDir).then(
          (s) => s.isDirectory(),
          () => false,
        );
        if (!ok) steps.fail("clone", `the plugin's clone ${cloneDir} is missing`);
        steps.ok("clone", `using the clone on disk ${cloneDir}`);
      }
      // path
      const dir = await resolvePluginDir(cloneDir, spec.path);
      await checkInsideClone(cloneDir, pluginMetaFiles(dir), "path");
      steps.ok(
        "path",
        spec.path ? `plugin directory ${spec.path}` : "plugin at the repository root",
      );
      // config
      let cfg: Awaited<ReturnType<typeof loadPluginConfig>>;
      let resolved: ReturnType<typeof resolveParameters>;
      try {
        cfg = await loadPluginConfig(dir, spec.kind);
        resolved = resolveParameters(cfg, spec.overrides);
      } catch (e) {
        if (e instanceof PluginConfigError) steps.fail("config", e.message);
        throw e;
      }
      steps.ok(
        "config",
        cfg.file
          ? `${cfg.pvs.length} PVs declared, mode ${resolved.mode}`
          : "no config.yaml (defaults)",
      );
      // dependencies
      if (
        src.from === "disk" &&
        (await stat(join(dir, "node_modules")).then(
          () => true,
          () => false,
        ))
      ) {
        steps.ok("dependencies", "already installed");
      } else {
        steps.ok(
          "dependencies",
          await installDependencies(dir, this.timings.installTimeoutMs, this.stopSignal.signal),
        );
      }
      // syntax
      const nFiles = await syntaxCheck(dir);
      steps.ok("syntax", `${nFiles} source file${nFiles === 1 ? "" : "s"} parsed`);
      // import, inheritance, abstract
      const files = await entryFiles(dir, { allowNone: cfg.file !== null });
      await checkInsideClone(cloneDir, files, "import");
      const loaded: Loaded = {
        name: spec.name,
        kind: spec.kind,
        mode: resolved.mode,
        interval: resolved.interval,
        prefix: pvPrefixFor(this.deps.config, spec.name, cfg.prefix),
        ...(resolved.declarative ? { declarative: resolved.declarative } : {}),
        git_url: spec.git_url,
        ...(spec.branch !== undefined ? { branch: spec.branch } : {}),
        ...(spec.path !== undefined ? { path: spec.path } : {}),
        parameters: resolved.parameters,
        overrides: spec.overrides,
        auto_start: spec.auto_start,
        ...(spec.pat ? { pat: spec.pat } : {}),
        ...(spec.pat_env ? { pat_env: spec.pat_env } : {}),
        cloneDir,
        pluginDir: dir,
        addedAt: spec.addedAt,
        worker: null as unknown as PluginWorker, // set right below, before anyone reads it
        pvs: new Map(),
        unsubs,
        autosaved: {},
        beforeWatchdog: null,
        triggerBusy: false,
        jobBusy: false,
        stopped: false,
      };
      loadedRef = loaded;
      if (this.shuttingDown) steps.fail("import", "server is shutting down");
      worker = this.spawnWorker(loaded, log);
      this.loadingWorkers.add(worker);
      loaded.worker = worker;
      try {
        await worker.waitReady();
      } catch (e) {
        steps.fail("import", errMsg(e));
      }
      const lr = await worker.request(
        { t: "load", files, kind: spec.kind },
        this.timings.importTimeoutMs,
      );
      if (!lr.ok) {
        const step = (lr.step ?? "import") as PipelineStep;
        if (step === "inheritance" || step === "abstract")
          steps.ok("import", `${files.length} module(s) imported`);
        if (step === "abstract") steps.ok("inheritance", "plugin class found");
        steps.fail(step, lr.message);
      }
      steps.ok("import", `${files.length} module(s) imported`);
      steps.ok("inheritance", lr.message);
      steps.ok("abstract", abstractOk(lr.data, spec.kind));
      // pvs
      const defs: PvDef[] = pluginPvDefs(spec.kind, cfg, resolved.declarative);
      loaded.autosaved = await this.deps.state.loadAutosave(spec.name).catch((err: unknown) => {
        log.warn({ err }, "cannot read autosaved values");
        return {};
      });
      for (const def of defs) {
        const fullName = `${loaded.prefix}:${def.name}`;
        const pvSpec: PvSpec = { ...def.spec, name: fullName };
        if (def.name === "ENABLE" && spec.kind === "task") pvSpec.initial = spec.auto_start ? 1 : 0;
        let pv: Pv;
        try {
          pv = this.deps.registry.add(pvSpec, this.writeHandler(loaded, def.name));
        } catch (e) {
          steps.fail(
            "pvs",
            e instanceof PvSpecError ? errMsg(e) : `cannot create ${fullName}: ${errMsg(e)}`,
          );
        }
        created.push(fullName);
        loaded.pvs.set(def.name, { short: def.name, pv, autosave: def.autosave });
      }
      this.restoreValues(loaded, src.keep, log);
      for (const p of loaded.pvs.values()) this.watchAutosave(loaded, p);
      steps.ok("pvs", `${created.length} PVs under ${loaded.prefix}:`);
      // start
      const enabled = spec.kind === "task" ? loaded.pvs.get("ENABLE")?.pv.value !== 0 : true;
      const sr = await worker.request(
        {
          t: "start",
          name: spec.name,
          kind: spec.kind,
          prefix: loaded.prefix,
          parameters: loaded.parameters,
          mode: loaded.mode,
          interval: loaded.interval,
          enabled,
          pvs: this.workerPvs(loaded),
          services: {
            beamlineValues: this.deps.config.beamlineValues,
            beamline: this.deps.config.beamline,
            namespace: this.deps.config.namespace,
            devices: !this.deps.config.disableDevices,
          },
          initTimeoutMs: this.timings.initTimeoutMs,
          ...(loaded.declarative ? { declarative: loaded.declarative } : {}),
        },
        this.timings.initTimeoutMs + 2000,
      );
      if (!sr.ok && src.from === "disk" && !this.shuttingDown) {
        // Boot (or a restart's rollback): keep the plugin visible in ERROR with the reason, so an
        // operator sees why (e.g. hardware offline) and can restart or delete it, instead of it
        // silently missing from the API. It does not run.
        loaded.startError = sr.message;
        loaded.pvs.get("STATUS")?.pv.post(spec.kind === "task" ? "ERROR" : "FAILED");
        loaded.pvs.get("MESSAGE")?.pv.post(truncateMessage(sr.message));
        this.plugins.set(spec.name.toLowerCase(), loaded);
        log.error(
          { step: "start" },
          `${spec.kind} ${spec.name} loaded but not started: ${sr.message}`,
        );
        return { ok: true, loaded, report: steps.report(new StepError("start", sr.message)) };
      }
      if (!sr.ok) steps.fail("start", sr.message);
      steps.ok(
        "start",
        spec.kind === "job"
          ? "job ready"
          : loaded.mode === "triggered"
            ? "waiting for RUN"
            : enabled
              ? `running every ${loaded.interval} s`
              : "loaded, disabled (ENABLE=0)",
      );
      if (this.shuttingDown) steps.fail("start", "server is shutting down");
      this.plugins.set(spec.name.toLowerCase(), loaded);
      log.info({ kind: spec.kind, prefix: loaded.prefix }, `${spec.kind} ${spec.name} loaded`);
      return { ok: true, loaded, report: steps.report() };
    } catch (e) {
      const report = steps.report(e);
      if (!(e instanceof StepError)) log.error({ err: e }, "plugin pipeline failed unexpectedly");
      else log.warn({ step: e.step }, `${spec.kind} ${spec.name} not loaded: ${report.message}`);
      for (const u of unsubs) u();
      worker?.terminate();
      if (loadedRef) loadedRef.stopped = true;
      for (const n of created) this.deps.registry.remove(n);
      // PVs the plugin created with addPv during initialize() go too.
      for (const { pv } of loadedRef?.pvs.values() ?? []) this.deps.registry.remove(pv.name);
      if (src.from === "git" && cloneDir) {
        await rm(cloneDir, { recursive: true, force: true }).catch(() => {});
        // The per-plugin directory too, when nothing else (an older clone) lives there.
        await this.removeIfEmpty(join(this.deps.config.pluginsDir, spec.name));
      }
      return { ok: false, report };
    } finally {
      if (worker) this.loadingWorkers.delete(worker);
    }
  }

  private async removeIfEmpty(dir: string): Promise<void> {
    const { readdir, rmdir } = await import("node:fs/promises");
    const entries = await readdir(dir).catch(() => null);
    if (entries && entries.length === 0) await rmdir(dir).catch(() => {});
  }

  private spawnWorker(p: Loaded, log: Logger): PluginWorker {
    return new PluginWorker(
      log,
      {
        onSet: (updates) => {
          for (const [short, value, severity, status] of updates) {
            const pp = p.pvs.get(short);
            if (!pp) {
              log.warn({ pv: short }, "setPv on an unknown PV ignored");
              continue;
            }
            try {
              pp.pv.post(
                value,
                severity !== undefined
                  ? {
                      severity: severity as 0,
                      ...(status !== undefined ? { status: status as 0 } : {}),
                    }
                  : {},
              );
            } catch (e) {
              log.warn({ pv: short }, `setPv ${short}: ${errMsg(e)}`);
            }
          }
        },
        onAddPv: async (name, def) => this.addRuntimePv(p, name, def),
        onUnresponsive: () => {
          const status = p.pvs.get("STATUS")?.pv;
          const message = p.pvs.get("MESSAGE")?.pv;
          if (!status || !message || p.stopped) return;
          p.beforeWatchdog = { status: status.value, message: message.value };
          status.post(p.kind === "task" ? "ERROR" : "FAILED");
          message.post(truncateMessage("unresponsive: blocked (watchdog)"));
        },
        onResponsive: () => {
          const b = p.beforeWatchdog;
          p.beforeWatchdog = null;
          if (!b || p.stopped) return;
          p.pvs.get("STATUS")?.pv.post(b.status);
          p.pvs.get("MESSAGE")?.pv.post(b.message);
          log.info("plugin responsive again");
        },
        onExit: (code) => {
          if (p.stopped) return;
          p.pvs.get("STATUS")?.pv.post(p.kind === "task" ? "ERROR" : "FAILED");
          p.pvs.get("MESSAGE")?.pv.post(truncateMessage(`worker ended (exit ${code})`));
        },
      },
      { readyTimeoutMs: this.timings.importTimeoutMs, watchdogMs: this.timings.watchdogMs },
      this.tokenEnvNames(),
    );
  }

  /** Names of every environment variable known to hold a git token (pat_env of any plugin). */
  private tokenEnvNames(): string[] {
    const names = new Set<string>();
    for (const d of this.deps.config.plugins) if (d.pat_env) names.add(d.pat_env);
    for (const n of this.knownTokenEnv) names.add(n);
    return [...names];
  }

  /** The write handler of a plugin PV: ENABLE, RUN and inputs go through the worker. */
  private writeHandler(p: Loaded, short: string) {
    if (p.kind === "task" && short === "RUN") {
      return async (value: PvValue): Promise<void> => {
        if (value === 0) return;
        if (p.triggerBusy) throw new Error("busy: the previous execute() is still running");
        if (p.worker.isUnresponsive) throw new Error("plugin unresponsive: trigger refused");
        const pv = p.pvs.get("RUN")?.pv;
        p.triggerBusy = true;
        pv?.post(1);
        try {
          // No timeout: the put completes when execute() does (caput -c semantics).
          const r = await p.worker.request({ t: "trigger" });
          if (!r.ok) throw new Error(r.message);
        } finally {
          p.triggerBusy = false;
          pv?.post(0);
        }
      };
    }
    return async (value: PvValue): Promise<void> => {
      if (p.worker.isUnresponsive) throw new Error("plugin unresponsive: write refused");
      // The Worker times out onPvWrite itself (clear message); the extra second here covers a
      // Worker too busy to answer at all.
      const r = await p.worker.request(
        { t: "write", pv: short, value, timeoutMs: this.timings.writeTimeoutMs },
        this.timings.writeTimeoutMs + 1000,
      );
      if (!r.ok) throw new Error(r.message);
    };
  }

  private restoreValues(p: Loaded, keep: Map<string, PvValue> | null, log: Logger): void {
    for (const pp of p.pvs.values()) {
      let v: unknown;
      if (keep?.has(pp.short)) v = keep.get(pp.short);
      else if (pp.autosave && Object.hasOwn(p.autosaved, pp.short)) v = p.autosaved[pp.short];
      else continue;
      try {
        pp.pv.post(v);
      } catch (e) {
        log.warn({ pv: pp.short }, `saved value not restored: ${errMsg(e)}`);
      }
    }
  }

  private watchAutosave(p: Loaded, pp: PluginPv): void {
    if (!pp.autosave) return;
    p.unsubs.push(
      pp.pv.subscribe((mask) => {
        if ((mask & (DBE.VALUE | DBE.LOG)) === 0) return;
        try {
          this.deps.state.saveAutosave(p.name, pp.short, jsonValue(pp.pv.value));
        } catch (err) {
          this.log.warn({ err, plugin: p.name }, "autosave failed");
        }
      }),
    );
  }

  private workerPvs(p: Loaded): Record<string, WorkerPvInfo> {
    const out: Record<string, WorkerPvInfo> = {};
    for (const [short, { pv }] of p.pvs) {
      out[short] = {
        kind: pv.kind,
        count: pv.count,
        writable: pv.writable,
        ...(pv.meta.states ? { states: [...pv.meta.states] } : {}),
        value: pv.value,
      };
    }
    return out;
  }

  /** addPv from a plugin: validated like config.yaml PVs; resolves with the PV's current value. */
  private async addRuntimePv(p: Loaded, name: string, def: PvDefinition): Promise<unknown> {
    if (p.stopped) throw new Error("plugin is stopping");
    if (typeof name !== "string" || !PV_NAME_RE.test(name)) {
      throw new Error(
        `invalid PV name ${JSON.stringify(name)}: letters, digits, _-+:.[]<>; (≤ 60)`,
      );
    }
    if (p.pvs.has(name)) throw new Error(`PV "${name}" already exists`);
    if (p.pvs.size >= MAX_PVS_PER_PLUGIN) {
      throw new Error(`too many PVs: a plugin may have at most ${MAX_PVS_PER_PLUGIN}`);
    }
    if (!isPlainObject(def)) throw new Error("addPv: definition must be an object");
    const spec: PvSpec = {
      name: `${p.prefix}:${name}`,
      kind: def.kind,
      ...(def.count !== undefined ? { count: def.count } : {}),
      writable: def.writable === true,
      ...(def.initial !== undefined ? { initial: def.initial as PvValue } : {}),
      ...(def.meta !== undefined ? { meta: def.meta as PvSpec["meta"] } : {}),
    };
    const pv = this.deps.registry.add(spec, spec.writable ? this.writeHandler(p, name) : undefined);
    const pp: PluginPv = { short: name, pv, autosave: def.autosave ?? spec.writable === true };
    p.pvs.set(name, pp);
    if (pp.autosave && Object.hasOwn(p.autosaved, name)) {
      try {
        pv.post(p.autosaved[name]);
      } catch {
        // A saved value that no longer fits the new definition is dropped.
      }
    }
    this.watchAutosave(p, pp);
    return pv.value;
  }

  /** Stops a plugin's worker (cleanup() bounded), then removes its PVs. Never throws. */
  private async stopPlugin(p: Loaded): Promise<void> {
    if (p.stopped) return;
    p.stopped = true;
    if (!p.worker.isUnresponsive && !p.worker.isEnded) {
      await p.worker.request(
        { t: "stop", cleanupTimeoutMs: this.timings.cleanupTimeoutMs },
        this.timings.cleanupTimeoutMs + 300,
      );
    }
    p.worker.terminate();
    for (const u of p.unsubs) u();
    for (const { pv } of p.pvs.values()) this.deps.registry.remove(pv.name);
  }

  /** Stops and removes a plugin; ends within 2 s even for a hung plugin. */
  async remove(kind: "task" | "job", name: string): Promise<OpResult> {
    const p = typeof name === "string" ? this.find(name) : undefined;
    if (!p || p.kind !== kind)
      return { ok: false, code: 404, message: `no ${kind} named "${String(name).slice(0, 140)}"` };
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
      this.log.info({ plugin: p.name }, `${kind} ${p.name} removed`);
      return { ok: true, message: `${kind} ${p.name} removed`, value: undefined };
    } finally {
      this.busy.delete(key);
    }
  }

  /** Plugins of one kind, sorted by name. */
  list(kind: "task" | "job"): PluginInfo[] {
    return [...this.plugins.values()]
      .filter((p) => p.kind === kind)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => this.info(p));
  }

  /** One plugin, or undefined. */
  get(kind: "task" | "job", name: string): PluginInfo | undefined {
    const p = typeof name === "string" ? this.find(name) : undefined;
    return p && p.kind === kind ? this.info(p) : undefined;
  }

  private info(p: Loaded): PluginInfo {
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
      ...(p.kind === "task" ? { mode: p.mode } : {}),
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
        !p.stopped && p.startError === undefined && !p.worker.isEnded && !p.worker.isUnresponsive,
    };
  }

  /** Runs a job once (404 unknown, 409 already running). */
  async runJob(name: string): Promise<OpResult<JobResultJson>> {
    const p = typeof name === "string" ? this.find(name) : undefined;
    if (p?.kind !== "job")
      return { ok: false, code: 404, message: `no job named "${String(name).slice(0, 140)}"` };
    if (p.jobBusy) return { ok: false, code: 409, message: `job ${p.name} is already running` };
    if (p.stopped) return { ok: false, code: 409, message: `job ${p.name} is being removed` };
    p.jobBusy = true;
    try {
      const r = await p.worker.request({ t: "runJob" });
      if (!r.ok) return { ok: false, code: 500, message: r.message };
      const result = r.data as JobResultJson;
      return { ok: true, message: result.message, value: result };
    } finally {
      p.jobBusy = false;
    }
  }

  /** Re-clones and reloads a plugin; PV values are kept. On failure the old version is reloaded. */
  async restart(name: string): Promise<OpResult<PluginInfo>> {
    const old = typeof name === "string" ? this.find(name) : undefined;
    if (!old)
      return { ok: false, code: 404, message: `no plugin named "${String(name).slice(0, 140)}"` };
    const key = old.name.toLowerCase();
    if (this.busy.has(key))
      return { ok: false, code: 409, message: `"${old.name}" is being changed right now` };
    this.busy.add(key);
    try {
      const pat = old.pat ?? (old.pat_env ? process.env[old.pat_env] : undefined);
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
      const steps = new Steps();
      const r = await this.pipeline(spec, steps, { from: "git", keep });
      if (r.ok) {
        await this.persist(r.loaded);
        await rm(old.cloneDir, { recursive: true, force: true }).catch(() => {});
        return {
          ok: true,
          message: `${old.kind} ${old.name} restarted`,
          value: this.info(r.loaded),
          validation: r.report,
        };
      }
      // Bring the previous version back from its clone so a bad push does not lose the plugin.
      const back = await this.pipeline(spec, new Steps(), {
        from: "disk",
        cloneDir: old.cloneDir,
        keep,
      });
      if (!back.ok)
        this.log.error(
          { plugin: old.name },
          `previous version could not be reloaded: ${back.report.message}`,
        );
      return {
        ok: false,
        code: 422,
        message: `restart failed (${back.ok ? (back.loaded.startError === undefined ? "previous version reloaded" : "previous version reloaded but not started") : "plugin unloaded"}): ${r.report.message}`,
        validation: r.report,
      };
    } finally {
      this.busy.delete(key);
    }
  }

  /** Boot: plugins from state (on-disk clones, no network) then those declared in config. */
  async restore(): Promise<void> {
    const { plugins, warnings } = await this.deps.state.load();
    for (const w of warnings) this.log.warn(w);
    const restoreOne = async (rec: PluginRecord): Promise<void> => {
      const key = rec.name.toLowerCase();
      if (this.shuttingDown || this.plugins.has(key) || this.busy.has(key)) return;
      const pat = rec.pat_env ? process.env[rec.pat_env] : undefined;
      this.busy.add(key);
      try {
        const r = await this.pipeline(
          loadSpec(rec, {
            overrides: rec.parameters ?? {},
            auto_start: rec.auto_start,
            pat,
            addedAt: rec.addedAt,
          }),
          new Steps(),
          { from: "disk", cloneDir: rec.cloneDir, keep: null },
        );
        if (!r.ok) this.log.error({ plugin: rec.name }, `not restored: ${r.report.message}`);
      } finally {
        this.busy.delete(key);
      }
    };
    // A few at a time: boot is mostly waiting on Worker start-up and imports.
    const queue = [...plugins];
    const lanes = Array.from({ length: Math.min(RESTORE_CONCURRENCY, queue.length) }, async () => {
      for (let rec = queue.shift(); rec; rec = queue.shift()) await restoreOne(rec);
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

  /** Stops every plugin (cleanup(), bounded) and removes their PVs; records stay for next boot. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    // Plugins still loading (a slow initialize() during the boot restore, an add in flight) end
    // at once: their pipeline then fails and removes what it created; the wait for that is
    // bounded, so a signal still exits within its grace time.
    for (const w of this.loadingWorkers) w.terminate();
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

/**
 * The validation pipeline without a server (for `iocmng validate`): clone (or a local dir), path,
 * config, dependencies, syntax, import, inheritance, abstract methods and PV definitions. Nothing
 * is started; a temporary clone is deleted. `kind` is detected when not given.
 */
export async function validatePluginSource(src: {
  dir?: string;
  git_url?: string;
  branch?: string;
  path?: string;
  kind?: "task" | "job";
}): Promise<ValidationReport & { kind?: "task" | "job" }> {
  const steps: Steps = new Steps();
  let tmp: string | null = null;
  let worker: PluginWorker | null = null;
  try {
    let root: string;
    if (src.git_url !== undefined) {
      const err = checkGitUrl(src.git_url) ?? checkBranch(src.branch);
      if (err) steps.fail("request", err);
      tmp = await mkdtemp(join(tmpdir(), "iocmng-validate-"));
      root = join(tmp, "clone");
      try {
        const { commit } = await gitClone({
          url: src.git_url,
          dest: root,
          ...(src.branch ? { branch: src.branch } : {}),
        });
        steps.ok("clone", `cloned at ${commit.slice(0, 12)}`);
      } catch (e) {
        steps.fail("clone", errMsg(e));
      }
    } else if (src.dir !== undefined) {
      root = src.dir;
      const ok = await stat(root).then(
        (s) => s.isDirectory(),
        () => false,
      );
      if (!ok) steps.fail("path", `${root} is not a directory`);
    } else {
      steps.fail("request", "give a directory or a git URL");
    }
    const dir = await resolvePluginDir(root, src.path);
    await checkInsideClone(root, pluginMetaFiles(dir), "path");
    steps.ok("path", dir);
    // The kind decides the reserved PV names; detect it first when not given.
    const files = await entryFiles(dir)
      .then(async (fs) => {
        await checkInsideClone(root, fs, "import");
        return fs;
      })
      .catch((e: unknown) => {
        if (e instanceof StepError) return e;
        throw e;
      });
    let kind = src.kind;
    let cfg: Awaited<ReturnType<typeof loadPluginConfig>>;
    const cfgKind = kind ?? "task";
    try {
      cfg = await loadPluginConfig(dir, cfgKind);
      resolveParameters(cfg);
    } catch (e) {
      if (e instanceof PluginConfigError) steps.fail("config", e.message);
      throw e;
    }
    steps.ok("config", cfg.file ? `${cfg.pvs.length} PVs declared` : "no config.yaml (defaults)");
    steps.ok("dependencies", await installDependencies(dir));
    const n = await syntaxCheck(dir);
    steps.ok("syntax", `${n} source file${n === 1 ? "" : "s"} parsed`);
    if (files instanceof StepError) throw files;
    const log = (await import("pino")).default({ level: "silent" });
    worker = new PluginWorker(log, {
      onSet: () => {},
      onAddPv: async () => undefined,
      onUnresponsive: () => {},
      onResponsive: () => {},
      onExit: () => {},
    });
    await worker.waitReady();
    const lr = await worker.request(
      { t: "load", files, kind: kind ?? "auto" },
      DEFAULT_TIMINGS.importTimeoutMs,
    );
    if (!lr.ok) {
      const step = (lr.step ?? "import") as PipelineStep;
      if (step !== "import") steps.ok("import", `${files.length} module(s) imported`);
      if (step === "abstract") steps.ok("inheritance", "plugin class found");
      steps.fail(step, lr.message);
    }
    kind = (lr.data as { kind?: "task" | "job" }).kind ?? kind ?? "task";
    steps.ok("import", `${files.length} module(s) imported`);
    steps.ok("inheritance", lr.message);
    steps.ok("abstract", abstractOk(lr.data, kind));
    if (kind !== cfgKind) {
      try {
        cfg = await loadPluginConfig(dir, kind);
      } catch (e) {
        if (e instanceof PluginConfigError) steps.fail("config", e.message);
        throw e;
      }
    }
    const scratch = new PvRegistry();
    for (const def of [...defaultPvDefs(kind), ...cfg.pvs]) {
      try {
        scratch.add({ ...def.spec, name: `VALIDATE:${def.name}` });
      } catch (e) {
        steps.fail("pvs", errMsg(e));
      }
    }
    steps.ok("pvs", `${scratch.size} PVs`);
    return { ...steps.report(), kind };
  } catch (e) {
    return steps.report(e);
  } finally {
    worker?.terminate();
    if (tmp) await rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
}
