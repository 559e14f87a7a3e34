/**
 * A plugin's `config.yaml`: its default parameters and the PVs it declares. Reading and checking a
 * file: its schema (config-schema.ts, the single source of truth, also for editors), then what a
 * JSON Schema cannot express — each PV's fields for its type (config-pv.ts), names not clashing
 * with the default PVs of the kind (below), `mode` and `interval` after the request's overrides.
 *
 * Meaning of the seed's fields is kept: `low`/`high` are DISPLAY limits (LOPR/HOPR). Alarm limits
 * live in a nested `alarm:` mapping so they can never be mistaken for them.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { JOB_STATES, TASK_STATES } from "../common/names.ts";
import { show } from "../common/text.ts";
import { parseYamlText } from "../common/yaml.ts";
import {
  type DeclarativeProblem,
  declarativePvDefs,
  declarativeSpec,
  isDeclarative,
  loopMode,
} from "../declarative/plugin-config.ts";
import { portPvDefs } from "../declarative/pvdefs.ts";
import type { DeclarativeSpec } from "../declarative/spec.ts";
import { buildPvDef } from "./config-pv.ts";
import {
  limitsFromYaml,
  MAX_DECLARED_PVS,
  MAX_INTERVAL,
  MAX_PLUGIN_CONFIG_BYTES,
  MAX_PV_SHORT_NAME,
  MIN_INTERVAL,
  type PluginConfig,
  PluginConfigError,
  type PluginConfigYaml,
  PV_NAME_RE,
  type PvDef,
} from "./config-schema.ts";
import { schemaError } from "./config-schema-errors.ts";

export type { PluginConfig, RestartPolicy } from "./config-schema.ts";

// -----------------------------------------------------------------------------------------------
// Default PVs.

/** Names of the default PVs of a kind (config.yaml may not redeclare them, in any case). */
export function defaultPvNames(kind: "task" | "job"): string[] {
  return kind === "task"
    ? ["ENABLE", "STATUS", "MESSAGE", "CYCLE_COUNT", "RUN"]
    : ["STATUS", "MESSAGE"];
}

/** The PVs every plugin of `kind` gets, as in the seed's tables. */
export function defaultPvDefs(kind: "task" | "job"): PvDef[] {
  const message: PvDef = {
    name: "MESSAGE",
    direction: "output",
    autosave: false,
    spec: { kind: "string", writable: false, initial: "", meta: { description: "Status message" } },
  };
  // STATUS: the kind's states, the failure state (the last one) in MAJOR alarm.
  const states: readonly string[] = kind === "job" ? JOB_STATES : TASK_STATES;
  const status: PvDef = {
    name: "STATUS",
    direction: "output",
    autosave: false,
    spec: {
      kind: "enum",
      writable: false,
      initial: 0,
      meta: {
        states: [...states],
        stateSeverity: states.map((_, i) => (i === states.length - 1 ? 2 : 0)),
        description: kind === "job" ? "Job status" : "Task status",
      },
    },
  };
  if (kind === "job") return [status, message];
  return [
    {
      name: "ENABLE",
      direction: "input",
      autosave: false,
      spec: {
        kind: "enum",
        writable: true,
        initial: 1,
        meta: { states: ["Disabled", "Enabled"], description: "Enable/disable the task" },
      },
    },
    status,
    message,
    {
      name: "CYCLE_COUNT",
      direction: "output",
      autosave: false,
      spec: { kind: "long", writable: false, initial: 0, meta: { description: "Cycles executed" } },
    },
    {
      name: "RUN",
      direction: "input",
      autosave: false,
      spec: {
        kind: "enum",
        writable: true,
        initial: 0,
        meta: { states: ["0", "1"], description: "Write 1 to run once (triggered)" },
      },
    },
  ];
}

/**
 * Parses and validates the text of a config.yaml. `file` names it in errors; `kind` decides which
 * default PV names are reserved. Throws PluginConfigError.
 */
export function parsePluginConfig(text: string, file: string, kind: "task" | "job"): PluginConfig {
  const r = parseYamlText(text, { maxBytes: MAX_PLUGIN_CONFIG_BYTES });
  if (!r.ok) throw new PluginConfigError(file, r.path, r.expected, r.message);
  const data = r.value ?? {};
  if (isDeclarative(data))
    return parseDeclarativeConfig(data as Record<string, unknown>, file, kind);
  const se = schemaError(file, data);
  if (se !== null) throw se;
  const doc = data as PluginConfigYaml;
  const parameters: Record<string, unknown> = { ...(doc.parameters ?? {}) };

  const reserved = defaultPvNames(kind);
  const pvs: PvDef[] = [];
  const seen = new Map<string, string>();
  const groups: ["inputs" | "outputs", "input" | "output"][] = [
    ["inputs", "input"],
    ["outputs", "output"],
  ];
  for (const [group, direction] of groups) {
    const map = doc.pvs?.[group];
    if (map === undefined || map === null) continue;
    for (const [name, y] of Object.entries(map)) {
      const base = `pvs.${group}.${name}`;
      if (!PV_NAME_RE.test(name)) {
        throw new PluginConfigError(
          file,
          base,
          "a PV name",
          `invalid PV name; expected 1..${MAX_PV_SHORT_NAME} characters of letters, digits and _ - + : [ ] < > ; starting with a letter, digit or _`,
        );
      }
      const clash = reserved.find((r) => r.toUpperCase() === name.toUpperCase());
      if (clash !== undefined) {
        throw new PluginConfigError(
          file,
          base,
          "a name that is not a default PV",
          `'${name}' clashes with the default ${kind} PV ${clash} (reserved: ${reserved.join(", ")})`,
        );
      }
      const prev = seen.get(name.toUpperCase());
      if (prev !== undefined) {
        throw new PluginConfigError(
          file,
          base,
          "unique PV names",
          `'${name}' is already declared at ${prev} (names are compared case-insensitively)`,
        );
      }
      seen.set(name.toUpperCase(), base);
      if (pvs.length >= MAX_DECLARED_PVS) {
        throw new PluginConfigError(
          file,
          `pvs.${group}`,
          `at most ${MAX_DECLARED_PVS} PVs`,
          `too many PVs (more than ${MAX_DECLARED_PVS})`,
        );
      }
      pvs.push(buildPvDef(file, base, name, y, direction));
    }
  }
  // Mode/interval are validated here too so a bad file fails at the config step.
  resolveParametersIn(file, parameters, "parameters");
  const asg = doc.access?.asg;
  return {
    parameters,
    pvs,
    file,
    ...(doc.limits ? { limits: limitsFromYaml(doc.limits) } : {}),
    ...(doc.restart ? { restart: doc.restart } : {}),
    ...(asg !== undefined ? { asg } : {}),
  };
}

function declarativeError(file: string, p: DeclarativeProblem): PluginConfigError {
  return new PluginConfigError(
    file,
    p.path,
    "a valid 2.7.9 declarative config",
    p.message.slice(p.path.length + 2),
  );
}

/** A 2.7.9 declarative config.yaml (tasks only): its PVs, parameters and spec. */
function parseDeclarativeConfig(
  data: Record<string, unknown>,
  file: string,
  kind: "task" | "job",
): PluginConfig {
  if (kind === "job") {
    throw new PluginConfigError(
      file,
      "",
      "a job config (parameters, pvs)",
      "links, rules, transforms and reactive mode are for tasks; this config.yaml describes a declarative task",
    );
  }
  const params = data.parameters ?? {};
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new PluginConfigError(
      file,
      "parameters",
      "a mapping",
      "expected a mapping of parameter names to values",
    );
  }
  const parameters = { ...(params as Record<string, unknown>) };
  const r = declarativeSpec(data, parameters);
  if (!r.ok) throw declarativeError(file, r.problem);
  return {
    parameters,
    pvs: portPvDefs(r.spec),
    file,
    declarative: { raw: data, spec: r.spec },
    ...(r.spec.prefix !== undefined ? { prefix: r.spec.prefix } : {}),
  };
}

/** Every PV of a plugin: the defaults of its kind and the declared ones (2.7.9's set when declarative). */
export function pluginPvDefs(
  kind: "task" | "job",
  cfg: PluginConfig,
  spec?: DeclarativeSpec,
): PvDef[] {
  const s = spec ?? cfg.declarative?.spec;
  if (s) return declarativePvDefs(s, defaultPvDefs(kind));
  return [...defaultPvDefs(kind), ...cfg.pvs];
}

/** Reads dir/config.yaml (or config.yml); a plugin without one gets an empty config. */
export async function loadPluginConfig(dir: string, kind: "task" | "job"): Promise<PluginConfig> {
  for (const name of ["config.yaml", "config.yml"]) {
    const file = join(dir, name);
    let size: number;
    try {
      const st = await stat(file);
      if (!st.isFile())
        throw new PluginConfigError(file, "", "a regular file", "not a regular file");
      size = st.size;
    } catch (e) {
      if (e instanceof PluginConfigError) throw e;
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
      if ((e as NodeJS.ErrnoException).code === "ENOTDIR") {
        throw new PluginConfigError(dir, "", "a plugin directory", "not a directory");
      }
      throw new PluginConfigError(
        file,
        "",
        "a readable file",
        `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      );
    }
    if (size > MAX_PLUGIN_CONFIG_BYTES) {
      throw new PluginConfigError(
        file,
        "",
        `a file of at most ${MAX_PLUGIN_CONFIG_BYTES} bytes`,
        `file too large (${size} bytes > ${MAX_PLUGIN_CONFIG_BYTES})`,
      );
    }
    const text = await readFile(file, "utf8");
    return parsePluginConfig(text, file, kind);
  }
  return { parameters: {}, pvs: [], file: null };
}

function resolveParametersIn(
  fileFor: string | ((key: string) => string),
  parameters: Record<string, unknown>,
  where: string,
): { mode: "continuous" | "triggered"; interval: number } {
  const source = (key: string): string => (typeof fileFor === "string" ? fileFor : fileFor(key));
  const mode = parameters.mode ?? "continuous";
  if (mode !== "continuous" && mode !== "triggered") {
    throw new PluginConfigError(
      source("mode"),
      `${where}.mode`,
      "'continuous' or 'triggered'",
      `expected 'continuous' or 'triggered', got ${show(mode)}`,
    );
  }
  const interval = parameters.interval ?? 1.0;
  if (
    typeof interval !== "number" ||
    !Number.isFinite(interval) ||
    interval < MIN_INTERVAL ||
    interval > MAX_INTERVAL
  ) {
    throw new PluginConfigError(
      source("interval"),
      `${where}.interval`,
      `a number of seconds ${MIN_INTERVAL}..${MAX_INTERVAL}`,
      `expected a number of seconds ${MIN_INTERVAL}..${MAX_INTERVAL}, got ${show(interval)}`,
    );
  }
  return { mode, interval };
}

/**
 * Merges REST/IOCMNG_CONFIG parameter overrides over the config.yaml parameters (overrides win, key
 * by key) and extracts `mode` (default continuous) and `interval` (default 1.0 s).
 */
export function resolveParameters(
  cfg: PluginConfig,
  overrides?: Record<string, unknown>,
): {
  parameters: Record<string, unknown>;
  mode: "continuous" | "triggered";
  interval: number;
  declarative?: DeclarativeSpec;
} {
  const parameters = { ...cfg.parameters, ...(overrides ?? {}) };
  if (cfg.declarative) {
    // The overrides may change mode, interval, timeout…: parse again with the merged parameters.
    const r = declarativeSpec(cfg.declarative.raw, parameters);
    if (!r.ok) {
      throw declarativeError(
        overrides ? "request parameters" : (cfg.file ?? "config.yaml"),
        r.problem,
      );
    }
    return { parameters, mode: loopMode(r.spec), interval: r.spec.interval, declarative: r.spec };
  }
  // Name the source of a bad value: the request's parameters or the plugin's config.yaml.
  const fileFor = (key: string): string =>
    overrides !== undefined && Object.hasOwn(overrides, key)
      ? "request parameters"
      : (cfg.file ?? "config.yaml");
  const { mode, interval } = resolveParametersIn(fileFor, parameters, "parameters");
  return { parameters, mode, interval };
}
