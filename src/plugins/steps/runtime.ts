/**
 * The steps that run plugin code: load (import, inheritance, abstract, in the plugin's host), pvs
 * (in the server's registry, or a scratch one when validating) and start (initialize()).
 */
import { errorMessage } from "../../common/errors.ts";
import { pvPrefixFor } from "../../config.ts";
import { type Pv, PvSpecError } from "../../pv/pv.ts";
import { PvRegistry } from "../../pv/registry.ts";
import type { PvSpec } from "../../pv/types.ts";
import { showFailure } from "../bridge.ts";
import { pluginPvDefs } from "../config.ts";
import { defaultSandboxConfig, effectiveLimits, type SandboxConfig } from "../host/sandbox.ts";
import { DEFAULT_HOST_TIMINGS, type HostEvents, type PluginHost } from "../host.ts";
import { checkInsideClone, entryFiles } from "../loader.ts";
import type { LoadedPlugin } from "../plugin.ts";
import { StepError, type Steps } from "../report.ts";
import { startRequest } from "../start-request.ts";
import type { PipelineStep } from "../types.ts";
import {
  type PipelineContext,
  type PipelineStepDef,
  requireSet,
  type ServerSide,
} from "./context.ts";
import { readConfig } from "./source.ts";

/** The operator's sandbox settings (defaults when the config has none). */
function sandboxOf(server: ServerSide): SandboxConfig {
  return server.config.sandbox ?? defaultSandboxConfig();
}

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
    prefix: pvPrefixFor(server.config, spec.name, requireSet(ctx.cfg, "cfg").prefix),
    parameters: resolved.parameters,
    ...(resolved.declarative ? { declarative: resolved.declarative } : {}),
    cloneDir: requireSet(ctx.root, "root"),
    pluginDir: requireSet(ctx.dir, "dir"),
    host: null as unknown as PluginHost, // set by startHost before anyone reads it
    limits: effectiveLimits(sandboxOf(server), ctx.cfg?.limits),
    restart: ctx.cfg?.restart ?? "on-failure",
    failures: [],
    files: ctx.files ?? [],
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
      name: "validate",
      // `iocmng validate`/`run` are the operator's own commands: the plugin runs as the operator
      // (no uid switch, so nothing in the operator's directories is made traversable).
      sandbox: { ...defaultSandboxConfig(), uid: null, gid: null },
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
    name: plugin.name,
    sandbox: sandboxOf(server),
    limits: plugin.limits,
    codeDirs: [plugin.cloneDir],
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

export const load: PipelineStepDef = {
  name: "load",
  async run(ctx) {
    const { steps } = ctx;
    const root = requireSet(ctx.root, "root");
    // With a config.yaml and no code, the built-in DeclarativeTask runs it (2.7.9's config-only plugins).
    const files = await entryFiles(requireSet(ctx.dir, "dir"), {
      allowNone: requireSet(ctx.cfg, "cfg").file !== null,
    });
    await checkInsideClone(root, files, "import");
    ctx.files = files;
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
    const className = (lr.data as { className?: unknown } | undefined)?.className;
    if (ctx.plugin && typeof className === "string") ctx.plugin.className = className;
    // A detected kind is the plugin's kind (POST /plugins of 2.7.9 takes either).
    if (ctx.plugin) ctx.plugin.kind = detected;
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
  const cfg = requireSet(ctx.cfg, "cfg");
  if (cfg.asg !== undefined) plugin.asg = cfg.asg;
  // ctx.kind: the detected kind when the request left it open.
  for (const def of pluginPvDefs(ctx.kind, cfg, ctx.resolved?.declarative)) {
    const fullName = `${plugin.prefix}:${def.name}`;
    const pvSpec: PvSpec = { ...def.spec, name: fullName };
    // The plugin's access security group, unless the PV names its own.
    if (pvSpec.asg === undefined && cfg.asg !== undefined) pvSpec.asg = cfg.asg;
    if (def.name === "ENABLE" && ctx.kind === "task") pvSpec.initial = spec.auto_start ? 1 : 0;
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
  const cfg = requireSet(ctx.cfg, "cfg");
  for (const def of pluginPvDefs(ctx.kind, cfg, ctx.resolved?.declarative)) {
    try {
      scratch.add({ ...def.spec, name: `VALIDATE:${def.name}` });
    } catch (e) {
      ctx.steps.fail("pvs", errorMessage(e));
    }
  }
  ctx.steps.ok("pvs", `${scratch.size} PVs`);
}

export const pvs: PipelineStepDef = {
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

export const start: PipelineStepDef = {
  name: "start",
  async run(ctx) {
    const server = requireSet(ctx.server ?? undefined, "server");
    const p = requireSet(ctx.plugin, "plugin");
    const req = startRequest(p, server.config, server.bridge.hostPvs(p), ctx.timings.initTimeoutMs);
    const sr = await p.host.request(req, ctx.timings.initTimeoutMs + 2000);
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
    ctx.steps.ok("start", startedLine(p, req.enabled));
    if (server.isShuttingDown()) ctx.steps.fail("start", "server is shutting down");
    server.register(p);
    ctx.log.info({ kind: p.kind, prefix: p.prefix }, `${p.kind} ${p.name} loaded`);
  },
};
