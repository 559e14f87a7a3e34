/**
 * The plugin pipeline: an ordered list of small named steps over one context.
 *
 *   clone → path → config → dependencies → syntax → load → pvs → start
 *
 * `load` reports three lines of the report (import, inheritance, abstract). Adds, restarts and
 * boot restores run every step against the server (see {@link ServerSide}); `iocmng validate` runs
 * the same steps without a server: the `pvs` step creates the PVs in a scratch registry and the
 * pipeline stops before `start`. A failing step throws a StepError naming itself; the runner then
 * undoes, newest first, what earlier steps registered (PVs, host, clone directory), so a failure
 * leaves nothing behind.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, rmdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { errorMessage } from "../common/errors.ts";
import { checkBranch, checkGitUrl } from "../common/git-url.ts";
import { pvPrefixFor, type ServerConfig } from "../config.ts";
import { type Pv, PvSpecError } from "../pv/pv.ts";
import { PvRegistry } from "../pv/registry.ts";
import type { PvSpec, PvValue } from "../pv/types.ts";
import type { StateStore } from "../state/index.ts";
import { type PvBridge, showFailure } from "./bridge.ts";
import {
  defaultPvDefs,
  loadPluginConfig,
  type PluginConfig,
  PluginConfigError,
  resolveParameters,
} from "./config.ts";
import { GitError, gitClone } from "./git.ts";
import {
  DEFAULT_HOST_TIMINGS,
  type HostEvents,
  type PluginHost,
  type PluginHostFactory,
} from "./host.ts";
import {
  checkInsideClone,
  entryFiles,
  installDependencies,
  pluginMetaFiles,
  resolvePluginDir,
  syntaxCheck,
} from "./loader.ts";
import type { LoadedPlugin, LoadSpec, RuntimeTimings } from "./plugin.ts";
import { StepError, type Steps } from "./report.ts";
import type { PipelineStep, ValidationReport } from "./types.ts";

/** What the server gives the pipeline (absent when validating without a server). */
export interface ServerSide {
  config: ServerConfig;
  registry: PvRegistry;
  state: StateStore;
  bridge: PvBridge;
  /** Aborted by shutdown: kills clones and installs in progress. */
  signal: AbortSignal;
  isShuttingDown(): boolean;
  /** Environment variables known to hold git tokens (hidden from plugins). */
  tokenEnvNames(): string[];
  /** Hosts of plugins still in the pipeline: shutdown ends them. */
  loadingHosts: Set<PluginHost>;
  /** Makes a loaded plugin known to the controller (listed, removable). */
  register(p: LoadedPlugin): void;
}

/** Where the plugin's files come from. */
export type PipelineSource =
  /** A fresh clone into the plugins directory (add, restart). */
  | { from: "git" }
  /** The clone already on disk (boot restore, a restart's rollback); no network. */
  | { from: "disk"; cloneDir: string }
  /** A temporary clone, deleted at the end (validate a git URL). */
  | { from: "scratch" }
  /** A local directory used in place (validate a directory). */
  | { from: "dir"; dir: string };

/** Everything the steps share; each step reads what earlier ones set. */
export interface PipelineContext {
  readonly spec: LoadSpec;
  readonly source: PipelineSource;
  /** The kind being checked; `load` may change it when `detectKind` (validate without a kind). */
  kind: "task" | "job";
  readonly detectKind: boolean;
  /** PV values carried across a restart. */
  readonly keep: Map<string, PvValue> | null;
  readonly server: ServerSide | null;
  readonly timings: RuntimeTimings;
  readonly hostFactory: PluginHostFactory;
  readonly steps: Steps;
  readonly log: Logger;
  /** The repository root (clone or local directory). */
  root?: string;
  /** The plugin directory inside it. */
  dir?: string;
  cfg?: PluginConfig;
  resolved?: ReturnType<typeof resolveParameters>;
  host?: PluginHost;
  /** The plugin being loaded (server only). */
  plugin?: LoadedPlugin;
  /** Set when start failed during a restore: the plugin stays loaded, not running. */
  degraded?: StepError;
  /** Run newest first when a step fails. */
  readonly undo: Array<() => void | Promise<void>>;
  /** Run at the end whatever happened. */
  readonly always: Array<() => void | Promise<void>>;
}

/** Names of the pipeline's steps (`load` reports as import, inheritance and abstract). */
export type StepName =
  | "clone"
  | "path"
  | "config"
  | "dependencies"
  | "syntax"
  | "load"
  | "pvs"
  | "start";

/** One named step. */
export interface PipelineStepDef {
  readonly name: StepName;
  run(ctx: PipelineContext): Promise<void>;
}

/** The pipeline's result: the report, and the loaded plugin on success. */
export type PipelineOutcome =
  | { ok: true; plugin: LoadedPlugin | undefined; report: ValidationReport }
  | { ok: false; report: ValidationReport };

const isDirectory = (p: string): Promise<boolean> =>
  stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );

async function removeIfEmpty(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => null);
  if (entries && entries.length === 0) await rmdir(dir).catch(() => {});
}

function requireSet<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`pipeline: ${what} not set by an earlier step`);
  return v;
}

const clone: PipelineStepDef = {
  name: "clone",
  async run(ctx) {
    const { spec, source, steps } = ctx;
    if (source.from === "dir") {
      if (!(await isDirectory(source.dir))) steps.fail("path", `${source.dir} is not a directory`);
      ctx.root = source.dir;
      return;
    }
    if (source.from === "disk") {
      if (!(await isDirectory(source.cloneDir))) {
        steps.fail("clone", `the plugin's clone ${source.cloneDir} is missing`);
      }
      ctx.root = source.cloneDir;
      steps.ok("clone", `using the clone on disk ${source.cloneDir}`);
      return;
    }
    let dest: string;
    if (source.from === "scratch") {
      const err = checkGitUrl(spec.git_url) ?? checkBranch(spec.branch);
      if (err) steps.fail("request", err);
      const tmp = await mkdtemp(join(tmpdir(), "iocmng-validate-"));
      ctx.always.push(() => rm(tmp, { recursive: true, force: true }).catch(() => {}));
      dest = join(tmp, "clone");
    } else {
      const server = requireSet(ctx.server ?? undefined, "server");
      const parent = join(server.config.pluginsDir, spec.name);
      await mkdir(parent, { recursive: true });
      dest = join(parent, `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`);
      ctx.undo.push(async () => {
        await rm(dest, { recursive: true, force: true }).catch(() => {});
        // The per-plugin directory too, when nothing else (an older clone) lives there.
        await removeIfEmpty(parent);
      });
    }
    ctx.root = dest;
    try {
      const { commit } = await gitClone({
        url: spec.git_url,
        dest,
        ...(spec.branch ? { branch: spec.branch } : {}),
        ...(spec.pat ? { pat: spec.pat } : {}),
        timeoutMs: ctx.timings.cloneTimeoutMs,
        ...(ctx.server ? { signal: ctx.server.signal } : {}),
      });
      steps.ok("clone", `cloned ${spec.branch ? `${spec.branch} ` : ""}at ${commit.slice(0, 12)}`);
    } catch (e) {
      steps.fail(
        "clone",
        e instanceof GitError ? e.message : `git clone failed: ${errorMessage(e)}`,
      );
    }
  },
};

const path: PipelineStepDef = {
  name: "path",
  async run(ctx) {
    const root = requireSet(ctx.root, "root");
    const dir = await resolvePluginDir(root, ctx.spec.path);
    await checkInsideClone(root, pluginMetaFiles(dir), "path");
    ctx.dir = dir;
    const where = ctx.spec.path
      ? `plugin directory ${ctx.spec.path}`
      : "plugin at the repository root";
    // Validation prints where it looked; the server's report names what was asked for.
    ctx.steps.ok("path", ctx.server ? where : dir);
  },
};

/** config.yaml of `dir` for `kind`, its errors as the `config` step's. */
async function readConfig(ctx: PipelineContext, dir: string): Promise<void> {
  try {
    ctx.cfg = await loadPluginConfig(dir, ctx.kind);
    ctx.resolved = resolveParameters(ctx.cfg, ctx.spec.overrides);
  } catch (e) {
    if (e instanceof PluginConfigError) ctx.steps.fail("config", e.message);
    throw e;
  }
}

const config: PipelineStepDef = {
  name: "config",
  async run(ctx) {
    await readConfig(ctx, requireSet(ctx.dir, "dir"));
    const cfg = requireSet(ctx.cfg, "cfg");
    const mode = ctx.server ? `, mode ${requireSet(ctx.resolved, "resolved").mode}` : "";
    ctx.steps.ok(
      "config",
      cfg.file ? `${cfg.pvs.length} PVs declared${mode}` : "no config.yaml (defaults)",
    );
  },
};

const dependencies: PipelineStepDef = {
  name: "dependencies",
  async run(ctx) {
    const dir = requireSet(ctx.dir, "dir");
    if (ctx.source.from === "disk" && (await isDirectory(join(dir, "node_modules")))) {
      ctx.steps.ok("dependencies", "already installed");
      return;
    }
    const signal = ctx.server?.signal;
    ctx.steps.ok(
      "dependencies",
      await installDependencies(dir, ctx.timings.installTimeoutMs, signal),
    );
  },
};

const syntax: PipelineStepDef = {
  name: "syntax",
  async run(ctx) {
    const n = await syntaxCheck(requireSet(ctx.dir, "dir"));
    ctx.steps.ok("syntax", `${n} source file${n === 1 ? "" : "s"} parsed`);
  },
};

/** The `abstract` step's success line: the class and the methods it implements. */
function abstractOk(loadData: unknown, kind: "task" | "job"): string {
  const name = (loadData as { className?: unknown } | undefined)?.className;
  const methods =
    kind === "task" ? "initialize(), execute(), cleanup()" : "initialize(), execute()";
  return `${typeof name === "string" && name !== "" ? name : "the plugin class"} implements ${methods}`;
}

/** Host events of a plugin being validated: nothing to deliver to. */
const NO_EVENTS: HostEvents = {
  onSet: () => {},
  onAddPv: async () => undefined,
  onUnresponsive: () => {},
  onResponsive: () => {},
  onExit: () => {},
};

/** The plugin record the server keeps, before its host exists. */
function newPlugin(ctx: PipelineContext, server: ServerSide): LoadedPlugin {
  const { spec } = ctx;
  const resolved = requireSet(ctx.resolved, "resolved");
  return {
    ...spec,
    mode: resolved.mode,
    interval: resolved.interval,
    prefix: pvPrefixFor(server.config, spec.name),
    parameters: resolved.parameters,
    cloneDir: requireSet(ctx.root, "root"),
    pluginDir: requireSet(ctx.dir, "dir"),
    host: null as unknown as PluginHost, // set by startHost before anyone reads it
    pvs: new Map(),
    unsubs: [],
    autosaved: {},
    beforeWatchdog: null,
    triggerBusy: false,
    jobBusy: false,
    stopped: false,
  };
}

/** Starts the plugin's host; on a later failure it ends and the plugin's PVs go. */
function startHost(ctx: PipelineContext): PluginHost {
  const server = ctx.server;
  if (server === null) {
    const host = ctx.hostFactory({
      log: ctx.log,
      events: NO_EVENTS,
      timings: { ...DEFAULT_HOST_TIMINGS, readyTimeoutMs: ctx.timings.importTimeoutMs },
      hiddenEnv: [],
    });
    ctx.always.push(() => host.terminate());
    return host;
  }
  if (server.isShuttingDown()) ctx.steps.fail("import", "server is shutting down");
  const plugin = newPlugin(ctx, server);
  ctx.plugin = plugin;
  const host = ctx.hostFactory({
    log: ctx.log,
    events: server.bridge.hostEvents(plugin, ctx.log),
    timings: { readyTimeoutMs: ctx.timings.importTimeoutMs, watchdogMs: ctx.timings.watchdogMs },
    hiddenEnv: server.tokenEnvNames(),
  });
  plugin.host = host;
  server.loadingHosts.add(host);
  ctx.always.push(() => {
    server.loadingHosts.delete(host);
  });
  ctx.undo.push(() => {
    for (const u of plugin.unsubs) u();
    host.terminate();
    plugin.stopped = true;
    // Declared PVs and those the plugin created with addPv during initialize().
    for (const { pv } of plugin.pvs.values()) server.registry.remove(pv.name);
  });
  return host;
}

const load: PipelineStepDef = {
  name: "load",
  async run(ctx) {
    const { steps } = ctx;
    const root = requireSet(ctx.root, "root");
    const files = await entryFiles(requireSet(ctx.dir, "dir"));
    await checkInsideClone(root, files, "import");
    const host = startHost(ctx);
    ctx.host = host;
    try {
      await host.waitReady();
    } catch (e) {
      steps.fail("import", errorMessage(e));
    }
    const kind = ctx.detectKind ? "auto" : ctx.kind;
    const lr = await host.request({ t: "load", files, kind }, ctx.timings.importTimeoutMs);
    if (!lr.ok) {
      const step = (lr.step ?? "import") as PipelineStep;
      if (step === "inheritance" || step === "abstract") {
        steps.ok("import", `${files.length} module(s) imported`);
      }
      if (step === "abstract") steps.ok("inheritance", "plugin class found");
      steps.fail(step, lr.message);
    }
    const detected = ctx.detectKind
      ? ((lr.data as { kind?: "task" | "job" } | undefined)?.kind ?? ctx.kind)
      : ctx.kind;
    steps.ok("import", `${files.length} module(s) imported`);
    steps.ok("inheritance", lr.message);
    steps.ok("abstract", abstractOk(lr.data, detected));
    if (detected !== ctx.kind) {
      // The kind decides the reserved PV names: read config.yaml again for the real one.
      ctx.kind = detected;
      await readConfig(ctx, requireSet(ctx.dir, "dir"));
    }
  },
};

/** Creates the plugin's PVs in the server's registry, wired to the plugin through the bridge. */
async function createPvs(ctx: PipelineContext, server: ServerSide): Promise<void> {
  const plugin = requireSet(ctx.plugin, "plugin");
  const { spec } = ctx;
  const steps: Steps = ctx.steps;
  plugin.autosaved = await server.state.loadAutosave(spec.name).catch((err: unknown) => {
    ctx.log.warn({ err }, "cannot read autosaved values");
    return {};
  });
  let created = 0;
  for (const def of [...defaultPvDefs(spec.kind), ...requireSet(ctx.cfg, "cfg").pvs]) {
    const fullName = `${plugin.prefix}:${def.name}`;
    const pvSpec: PvSpec = { ...def.spec, name: fullName };
    if (def.name === "ENABLE" && spec.kind === "task") pvSpec.initial = spec.auto_start ? 1 : 0;
    let pv: Pv;
    try {
      pv = server.registry.add(pvSpec, server.bridge.writeHandler(plugin, def.name));
    } catch (e) {
      steps.fail(
        "pvs",
        e instanceof PvSpecError
          ? errorMessage(e)
          : `cannot create ${fullName}: ${errorMessage(e)}`,
      );
    }
    created++;
    plugin.pvs.set(def.name, { short: def.name, pv, autosave: def.autosave });
  }
  server.bridge.restoreValues(plugin, ctx.keep, ctx.log);
  steps.ok("pvs", `${created} PVs under ${plugin.prefix}:`);
}

/** Validation: the PV definitions must make valid PVs (in a registry of their own). */
function checkPvs(ctx: PipelineContext): void {
  const scratch = new PvRegistry();
  for (const def of [...defaultPvDefs(ctx.kind), ...requireSet(ctx.cfg, "cfg").pvs]) {
    try {
      scratch.add({ ...def.spec, name: `VALIDATE:${def.name}` });
    } catch (e) {
      ctx.steps.fail("pvs", errorMessage(e));
    }
  }
  ctx.steps.ok("pvs", `${scratch.size} PVs`);
}

const pvs: PipelineStepDef = {
  name: "pvs",
  async run(ctx) {
    if (ctx.server === null) checkPvs(ctx);
    else await createPvs(ctx, ctx.server);
  },
};

/** The `start` step's success line. */
function startedLine(p: LoadedPlugin, enabled: boolean): string {
  if (p.kind === "job") return "job ready";
  if (p.mode === "triggered") return "waiting for RUN";
  return enabled ? `running every ${p.interval} s` : "loaded, disabled (ENABLE=0)";
}

const start: PipelineStepDef = {
  name: "start",
  async run(ctx) {
    const server = requireSet(ctx.server ?? undefined, "server");
    const p = requireSet(ctx.plugin, "plugin");
    const { config: cfg } = server;
    const enabled = p.kind === "task" ? p.pvs.get("ENABLE")?.pv.value !== 0 : true;
    const sr = await p.host.request(
      {
        t: "start",
        name: p.name,
        kind: p.kind,
        prefix: p.prefix,
        parameters: p.parameters,
        mode: p.mode,
        interval: p.interval,
        enabled,
        pvs: server.bridge.hostPvs(p),
        services: {
          beamlineValues: cfg.beamlineValues,
          beamline: cfg.beamline,
          namespace: cfg.namespace,
          devices: !cfg.disableDevices,
        },
        initTimeoutMs: ctx.timings.initTimeoutMs,
      },
      ctx.timings.initTimeoutMs + 2000,
    );
    if (!sr.ok && ctx.source.from === "disk" && !server.isShuttingDown()) {
      // Boot (or a restart's rollback): keep the plugin visible in ERROR with the reason, so an
      // operator sees why (e.g. hardware offline) and can restart or delete it, instead of it
      // silently missing from the API. It does not run.
      p.startError = sr.message;
      showFailure(p, sr.message);
      server.register(p);
      ctx.log.error({ step: "start" }, `${p.kind} ${p.name} loaded but not started: ${sr.message}`);
      ctx.degraded = new StepError("start", sr.message);
      return;
    }
    if (!sr.ok) ctx.steps.fail("start", sr.message);
    ctx.steps.ok("start", startedLine(p, enabled));
    if (server.isShuttingDown()) ctx.steps.fail("start", "server is shutting down");
    server.register(p);
    ctx.log.info({ kind: p.kind, prefix: p.prefix }, `${p.kind} ${p.name} loaded`);
  },
};

/** The steps, in order. */
export const PIPELINE: readonly PipelineStepDef[] = [
  clone,
  path,
  config,
  dependencies,
  syntax,
  load,
  pvs,
  start,
];

/** What validation runs: everything up to, not including, `start`. */
export const VALIDATION_PIPELINE: readonly PipelineStepDef[] = PIPELINE.slice(0, -1);

/** Runs `steps` over `ctx`; on a failure undoes what earlier steps did, newest first. */
export async function runPipeline(
  ctx: PipelineContext,
  steps: readonly PipelineStepDef[] = ctx.server ? PIPELINE : VALIDATION_PIPELINE,
): Promise<PipelineOutcome> {
  try {
    for (const step of steps) await step.run(ctx);
    return { ok: true, plugin: ctx.plugin, report: ctx.steps.report(ctx.degraded) };
  } catch (e) {
    const report = ctx.steps.report(e);
    const { kind, name } = ctx.spec;
    if (!(e instanceof StepError)) ctx.log.error({ err: e }, "plugin pipeline failed unexpectedly");
    else ctx.log.warn({ step: e.step }, `${kind} ${name} not loaded: ${report.message}`);
    for (const u of ctx.undo.reverse()) {
      try {
        await u();
      } catch (err) {
        ctx.log.error({ err }, "undoing a pipeline step failed");
      }
    }
    return { ok: false, report };
  } finally {
    for (const f of ctx.always) await f();
  }
}
