/**
 * The plugin descriptions 2.7.9 clients read (docs/rest-api.md, "2.7.9 routes"): PluginInfo (`GET /plugins/{n}`,
 * list entries), StartupInfo (`…/startup`) and the validation object. Built from a
 * `CompatPlugin`, the runtime-neutral description the server adapter fills in.
 */

/** What the server knows of one loaded plugin, in 2.7.9's terms. */
export interface CompatPlugin {
  name: string;
  kind: "task" | "job";
  className: string | null;
  git_url: string | null;
  local_path: string | null;
  path: string;
  branch: string;
  /** loaded | running | error | stopped (2.7.9's words). */
  status: "loaded" | "running" | "error" | "stopped";
  auto_start: boolean;
  auto_start_on_boot: boolean;
  autostart_order: number | null;
  pv_prefix: string;
  plugin_prefix: string;
  mode: "continuous" | "triggered" | "reactive" | null;
  /** REST/boot overrides only. */
  overrides: Record<string, unknown>;
  /** config.yaml parameters with the overrides merged. */
  parameters: Record<string, unknown>;
  /** Declared PVs as 2.7.9 shows them (raw keys plus defaults). */
  pvDefinitions: { inputs: Record<string, unknown>; outputs: Record<string, unknown> };
  /** Short names of every PV the plugin serves. */
  builtPvs: string[];
  running?: boolean;
  cycleCount?: number;
}

/** 2.7.9's validation object, with our step report alongside. */
export interface CompatValidation {
  ok: boolean;
  class_name: string | null;
  plugin_type: "task" | "job" | null;
  errors: string[];
  /** Ours: the step that failed and every step's line. */
  failedStep?: string;
  steps?: { step: string; ok: boolean; message: string }[];
}

/** Default PVs listed in `base_control_pvs` (2.7.9 does not list VERSION/CLEAR/RESET/CONN_*). */
export function baseControlPvs(p: Pick<CompatPlugin, "kind" | "mode">): string[] {
  if (p.kind === "job") return ["STATUS", "MESSAGE"];
  return ["ENABLE", "STATUS", "MESSAGE", p.mode === "triggered" ? "RUN" : "CYCLE_COUNT"];
}

/** StartupInfo of `GET /tasks|jobs/{name}/startup`. */
export function startupInfo(p: CompatPlugin): Record<string, unknown> {
  return {
    name: p.name,
    plugin_type: p.kind,
    auto_start: p.auto_start,
    auto_start_on_boot: p.auto_start_on_boot,
    autostart_order: p.autostart_order,
    pv_prefix: p.pv_prefix,
    plugin_prefix: p.plugin_prefix,
    mode: p.kind === "task" ? p.mode : null,
    start_parameters: p.parameters,
    arguments: p.pvDefinitions,
    pv_definitions: p.pvDefinitions,
    base_control_pvs: baseControlPvs(p),
    additional_input_pvs: Object.keys(p.pvDefinitions.inputs),
    additional_output_pvs: Object.keys(p.pvDefinitions.outputs),
    built_pvs: p.builtPvs,
  };
}

/** PluginInfo of `GET /plugins/{name}` and the list routes. */
export function pluginInfo(p: CompatPlugin): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: p.name,
    class_name: p.className,
    path: p.path,
    branch: p.branch,
    git_url: p.git_url,
    local_path: p.local_path,
    plugin_type: p.kind,
    status: p.status,
    ...startupInfo(p),
    parameters: p.overrides,
  };
  if (p.kind === "task") {
    out.running = p.running ?? false;
    out.cycle_count = p.cycleCount ?? 0;
  }
  return out;
}

/** The validation object from our step report. */
export function compatValidation(
  report: {
    ok: boolean;
    failedStep?: string;
    message: string;
    steps: { step: string; ok: boolean; message: string }[];
  },
  kind: "task" | "job" | null,
  className: string | null,
): CompatValidation {
  return {
    ok: report.ok,
    class_name: className,
    plugin_type: kind,
    errors: report.ok
      ? []
      : [
          report.message,
          ...report.steps.filter((s) => !s.ok).map((s) => `${s.step}: ${s.message}`),
        ].filter((x, i, a) => a.indexOf(x) === i),
    ...(report.failedStep !== undefined ? { failedStep: report.failedStep } : {}),
    steps: report.steps,
  };
}
