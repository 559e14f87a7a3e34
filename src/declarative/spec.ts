/**
 * The declarative part of a plugin's config.yaml, as iocmng 2.7.9 wrote it: `arguments` (or the
 * legacy `pvs`) with links to other IOCs' PVs, `transforms`, `rules`, `rule_defaults`, and the
 * parameters the framework reads (`mode` incl. `reactive`, `interval`, `timeout`,
 * `retry_interval`, `version`). `parseDeclarative` validates it and returns a plain,
 * serialisable `DeclarativeSpec` (it crosses into the plugin's Worker or process).
 *
 * Stricter than upstream on purpose: a misspelt `link_mode`, an unknown `type`, a rule writing a
 * PV that does not exist or an expression that does not compile refuse the plugin at load with
 * the field's path, where 2.7.9 silently fell back to a default or logged an error every cycle.
 */
import { compileExpr, ExprError } from "../expr/index.ts";
import { DeclarativeConfigError, isMap, num, oneOf, type Raw, text } from "./spec-fields.ts";
import { parsePorts } from "./spec-ports.ts";

export type PortType = "float" | "int" | "string" | "bool";
export type PortValue = number | string;
export type TaskMode = "continuous" | "triggered" | "reactive";

/** One declared PV (2.7.9 calls them arguments), wired to an external PV or not. */
export interface PortSpec {
  name: string;
  direction: "input" | "output";
  type: PortType;
  initial: PortValue;
  unit: string;
  prec: number;
  low: number;
  high: number;
  znam: string;
  onam: string;
  /** External PV name; absent = unwired. */
  link?: string;
  linkMode: "poll" | "monitor";
  /** Seconds between polls (poll links); absent = every cycle. */
  pollRate?: number;
  trigger: boolean;
  /** Ring buffer length (0 = none); exposed to expressions as `<name>_buf`. */
  bufferSize: number;
  latch: boolean;
  latchDir: "rise" | "fall" | "any";
  /** Severity raised by the value (float/int: at or above `high`; bool: state 1); 0 = none. */
  alarmOn: 0 | 1 | 2;
  /** The PV's definition as 2.7.9's REST shows it (raw keys plus filled defaults). */
  normalized: Record<string, unknown>;
}

export interface RuleSpec {
  id: string;
  condition: string;
  message: string;
  messagePv?: string;
  actuators: [string, PortValue][];
  outputs: [string, PortValue][];
}

export interface TransformSpec {
  output: string;
  expression: string;
}

/** Everything the declarative engine needs, plain data. */
export interface DeclarativeSpec {
  /** config.yaml `prefix`: the plugin's PV segment (replaces the upper-cased name). */
  prefix?: string;
  mode: TaskMode;
  interval: number;
  timeout: number;
  retryInterval: number;
  version: string;
  ports: PortSpec[];
  rules: RuleSpec[];
  ruleDefaults: [string, PortValue][];
  transforms: TransformSpec[];
}

const MAX_RULES = 1000;
function scalar(v: unknown, path: string): PortValue {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.length <= 255) return v;
  throw new DeclarativeConfigError(path, "expected a number, true/false or a string");
}

function writes(
  v: unknown,
  path: string,
  ports: Map<string, PortSpec>,
  wiredOnly: boolean,
): [string, PortValue][] {
  if (v === undefined || v === null) return [];
  if (!isMap(v)) throw new DeclarativeConfigError(path, "expected a mapping of PV name to value");
  return Object.entries(v).map(([name, val]) => {
    const p = ports.get(name);
    if (!p) throw new DeclarativeConfigError(`${path}.${name}`, `no declared PV named ${name}`);
    if (wiredOnly && p.link === undefined)
      throw new DeclarativeConfigError(`${path}.${name}`, `${name} has no link to write`);
    return [name, scalar(val, `${path}.${name}`)];
  });
}

function checkExpr(src: unknown, path: string, where: string): string {
  if (typeof src === "boolean") return src ? "True" : "False";
  if (typeof src === "number") return String(src);
  if (typeof src !== "string")
    throw new DeclarativeConfigError(path, "expected an expression string");
  try {
    compileExpr(src, { where });
  } catch (e) {
    if (e instanceof ExprError) throw new DeclarativeConfigError(path, e.message);
    throw e;
  }
  return src;
}

function parseRules(cfg: Raw, ports: Map<string, PortSpec>): RuleSpec[] {
  const rules = cfg.rules;
  if (rules === undefined || rules === null) return [];
  if (!Array.isArray(rules)) throw new DeclarativeConfigError("rules", "expected a list of rules");
  if (rules.length > MAX_RULES)
    throw new DeclarativeConfigError("rules", `at most ${MAX_RULES} rules`);
  return rules.map((r, i) => {
    const path = `rules[${i}]`;
    if (!isMap(r)) throw new DeclarativeConfigError(path, "expected a mapping");
    for (const k of Object.keys(r)) {
      if (!["id", "condition", "message", "message_pv", "actuators", "outputs"].includes(k)) {
        throw new DeclarativeConfigError(
          `${path}.${k}`,
          "unknown field (known: id, condition, message, message_pv, actuators, outputs)",
        );
      }
    }
    const id = text(r.id, `${path}.id`, String(i), 60);
    const messagePv =
      r.message_pv === undefined || r.message_pv === null
        ? undefined
        : text(r.message_pv, `${path}.message_pv`, "");
    if (messagePv !== undefined && !ports.has(messagePv)) {
      throw new DeclarativeConfigError(`${path}.message_pv`, `no declared PV named ${messagePv}`);
    }
    return {
      id,
      condition: checkExpr(r.condition ?? "False", `${path}.condition`, `Rule ${id} condition`),
      message: text(r.message, `${path}.message`, "", 1000),
      ...(messagePv !== undefined ? { messagePv } : {}),
      actuators: writes(r.actuators, `${path}.actuators`, ports, true),
      outputs: writes(r.outputs, `${path}.outputs`, ports, false),
    };
  });
}

function parseTransforms(cfg: Raw, ports: Map<string, PortSpec>): TransformSpec[] {
  const list = cfg.transforms;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list))
    throw new DeclarativeConfigError("transforms", "expected a list of {output, expression}");
  if (list.length > MAX_RULES)
    throw new DeclarativeConfigError("transforms", `at most ${MAX_RULES} transforms`);
  return list.map((t, i) => {
    const path = `transforms[${i}]`;
    if (!isMap(t))
      throw new DeclarativeConfigError(path, "expected a mapping {output, expression}");
    const output = text(t.output, `${path}.output`, "");
    if (!ports.has(output))
      throw new DeclarativeConfigError(
        `${path}.output`,
        `no declared PV named ${JSON.stringify(output)}`,
      );
    for (const k of Object.keys(t)) {
      if (k !== "output" && k !== "expression")
        throw new DeclarativeConfigError(
          `${path}.${k}`,
          "unknown field (known: output, expression)",
        );
    }
    return {
      output,
      expression: checkExpr(t.expression, `${path}.expression`, `Transform ${output}`),
    };
  });
}

/** The task mode from parameters: `mode` (case-insensitive) or the legacy `triggered: true`. */
function modeOf(params: Raw): TaskMode {
  if (params.mode === undefined || params.mode === null)
    return params.triggered ? "triggered" : "continuous";
  return oneOf(
    params.mode,
    "parameters.mode",
    { continuous: "continuous", triggered: "triggered", reactive: "reactive" },
    "continuous",
  );
}

/** Whether a config uses anything only the declarative engine understands. */
export function isDeclarative(cfg: unknown): boolean {
  if (!isMap(cfg)) return false;
  if (
    ["arguments", "rules", "transforms", "rule_defaults", "prefix"].some(
      (k) => cfg[k] !== undefined,
    )
  )
    return true;
  const params = cfg.parameters;
  if (isMap(params) && String(params.mode ?? "").toLowerCase() === "reactive") return true;
  const pvs = cfg.pvs;
  if (!isMap(pvs)) return false;
  return ["inputs", "outputs"].some((d) => {
    const m = pvs[d];
    return (
      isMap(m) &&
      Object.values(m).some(
        (p) =>
          isMap(p) &&
          ["link", "latch", "buffer_size", "alarm_on", "trigger"].some((k) => p[k] !== undefined),
      )
    );
  });
}

/**
 * Validates the declarative sections of a config.yaml (already parsed YAML) merged with the
 * effective parameters (REST overrides applied) and returns the engine's spec.
 */
export function parseDeclarative(
  cfg: Raw,
  parameters: Raw,
  iocmngVersion: string,
): DeclarativeSpec {
  const ports = parsePorts(cfg);
  const byName = new Map(ports.map((p) => [p.name, p]));
  const interval = num(parameters.interval, "parameters.interval", 1, { min: 0.001 });
  const spec: DeclarativeSpec = {
    mode: modeOf(parameters),
    interval,
    timeout: num(parameters.timeout, "parameters.timeout", 5, { min: 0.001 }),
    retryInterval: num(
      parameters.retry_interval,
      "parameters.retry_interval",
      Math.max(1, interval),
      { min: 0.001 },
    ),
    version: text(parameters.version, "parameters.version", iocmngVersion, 39),
    ports,
    rules: parseRules(cfg, byName),
    ruleDefaults: writes(cfg.rule_defaults, "rule_defaults", byName, false),
    transforms: parseTransforms(cfg, byName),
  };
  if (cfg.prefix !== undefined && cfg.prefix !== null) {
    const prefix = text(cfg.prefix, "prefix", "", 60);
    if (!/^[A-Za-z0-9_:-]+$/.test(prefix))
      throw new DeclarativeConfigError("prefix", "letters, digits, _ - and : only");
    spec.prefix = prefix;
  }
  return spec;
}
