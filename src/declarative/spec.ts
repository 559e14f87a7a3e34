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
import { compileExpr, ExprError, MAX_LIST } from "../expr/index.ts";

/** Invalid declarative config: `path` is the dotted field path (e.g. `rules[0].condition`). */
export class DeclarativeConfigError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = "DeclarativeConfigError";
  }
}

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

/** PV names the framework creates itself; a declared PV of that name is refused. */
export const RESERVED_TASK_PVS = [
  "STATUS",
  "MESSAGE",
  "ENABLE",
  "RUN",
  "CYCLE_COUNT",
  "VERSION",
  "CLEAR",
  "RESET",
  "CONN_INP",
  "CONN_INP_NAMES",
  "CONN_OUT",
  "CONN_OUT_NAMES",
];

const PORT_KEYS = new Set([
  "type",
  "value",
  "unit",
  "prec",
  "low",
  "high",
  "znam",
  "onam",
  "link",
  "link_mode",
  "mode",
  "poll_rate",
  "trigger",
  "buffer_size",
  "latch",
  "latch_dir",
  "alarm_on",
]);
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,59}$/;
const LINK_RE = /^[A-Za-z0-9_:.\-+[\]<>;{}$()/]{1,255}$/;
const MAX_RULES = 1000;
/** Most PVs one declarative config may declare (as our own config format). */
export const MAX_PORTS = 4096;

type Raw = Record<string, unknown>;

const isMap = (v: unknown): v is Raw => v !== null && typeof v === "object" && !Array.isArray(v);

function num(
  v: unknown,
  path: string,
  dflt: number,
  opts: { min?: number; int?: boolean } = {},
): number {
  if (v === undefined || v === null) return dflt;
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n))
    throw new DeclarativeConfigError(path, `expected a number, got ${JSON.stringify(v)}`);
  if (opts.int && !Number.isInteger(n))
    throw new DeclarativeConfigError(path, `expected an integer, got ${n}`);
  if (opts.min !== undefined && n < opts.min)
    throw new DeclarativeConfigError(path, `must be >= ${opts.min}, got ${n}`);
  return n;
}

function bool(v: unknown, path: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  if (v === 0 || v === 1) return v === 1;
  throw new DeclarativeConfigError(path, `expected true or false, got ${JSON.stringify(v)}`);
}

function text(v: unknown, path: string, dflt: string, max = 256): string {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "string" && typeof v !== "number")
    throw new DeclarativeConfigError(path, "expected a string");
  const s = String(v);
  if (s.length > max) throw new DeclarativeConfigError(path, `longer than ${max} characters`);
  return s;
}

function oneOf<T extends string>(v: unknown, path: string, allowed: Record<string, T>, dflt: T): T {
  if (v === undefined || v === null || v === "") return dflt;
  const key = String(v).toLowerCase();
  const hit = allowed[key];
  if (hit === undefined) {
    throw new DeclarativeConfigError(
      path,
      `expected one of ${Object.keys(allowed).join(", ")}, got ${JSON.stringify(v)}`,
    );
  }
  return hit;
}

/** The initial value converted as 2.7.9 does (`float(v)`, `int(v)`, `str(v)`, bool → 0/1). */
function initialValue(type: PortType, v: unknown, path: string): PortValue {
  if (type === "string") return v === undefined || v === null ? "" : text(v, path, "", 39);
  if (v === undefined || v === null) return 0;
  if (typeof v === "boolean") return v ? 1 : 0;
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n))
    throw new DeclarativeConfigError(path, `expected a number for a ${type} PV`);
  if (type === "bool") return n ? 1 : 0;
  return type === "int" ? Math.trunc(n) : n;
}

function parsePort(
  name: string,
  raw: unknown,
  direction: "input" | "output",
  path: string,
): PortSpec {
  if (!NAME_RE.test(name)) {
    throw new DeclarativeConfigError(
      path,
      "PV names are letters, digits and _ (at most 60), not starting with a digit",
    );
  }
  if (RESERVED_TASK_PVS.includes(name)) {
    throw new DeclarativeConfigError(
      path,
      `${name} is a PV the framework creates; pick another name`,
    );
  }
  if (!isMap(raw)) throw new DeclarativeConfigError(path, "expected a mapping describing the PV");
  for (const k of Object.keys(raw)) {
    if (!PORT_KEYS.has(k))
      throw new DeclarativeConfigError(
        `${path}.${k}`,
        `unknown field (known: ${[...PORT_KEYS].join(", ")})`,
      );
  }
  const type = oneOf(
    raw.type,
    `${path}.type`,
    { float: "float", int: "int", string: "string", bool: "bool" },
    "float",
  );
  const link =
    raw.link === undefined || raw.link === null || raw.link === ""
      ? undefined
      : text(raw.link, `${path}.link`, "");
  if (link !== undefined && !LINK_RE.test(link))
    throw new DeclarativeConfigError(`${path}.link`, `not a PV name: ${JSON.stringify(link)}`);
  if (raw.link_mode !== undefined && raw.mode !== undefined) {
    throw new DeclarativeConfigError(`${path}.mode`, "give link_mode or its alias mode, not both");
  }
  const linkMode = oneOf(
    raw.link_mode ?? raw.mode,
    `${path}.link_mode`,
    { poll: "poll", monitor: "monitor" },
    "poll",
  );
  const bufferSize = num(raw.buffer_size, `${path}.buffer_size`, 0, { int: true });
  if (bufferSize > MAX_LIST)
    throw new DeclarativeConfigError(`${path}.buffer_size`, `at most ${MAX_LIST}`);
  const sev = oneOf(raw.alarm_on, `${path}.alarm_on`, { major: "2", minor: "1", none: "0" }, "0");
  const port: PortSpec = {
    name,
    direction,
    type,
    initial: initialValue(type, raw.value, `${path}.value`),
    unit: text(raw.unit, `${path}.unit`, "", 7),
    prec: num(raw.prec, `${path}.prec`, 3, { int: true, min: 0 }),
    low: num(raw.low, `${path}.low`, 0),
    high: num(raw.high, `${path}.high`, 100),
    znam: text(raw.znam, `${path}.znam`, "Off", 25),
    onam: text(raw.onam, `${path}.onam`, "On", 25),
    ...(link !== undefined ? { link } : {}),
    linkMode,
    trigger: bool(raw.trigger, `${path}.trigger`),
    bufferSize: Math.max(0, bufferSize),
    latch: bool(raw.latch, `${path}.latch`),
    latchDir: oneOf(
      raw.latch_dir,
      `${path}.latch_dir`,
      { rise: "rise", "0->1": "rise", fall: "fall", "1->0": "fall", any: "any" },
      "rise",
    ),
    alarmOn: Number(sev) as 0 | 1 | 2,
    normalized: {},
  };
  if (raw.poll_rate !== undefined && raw.poll_rate !== null) {
    port.pollRate = num(raw.poll_rate, `${path}.poll_rate`, 0, { min: 0.001 });
  }
  if (link === undefined) {
    for (const k of ["link_mode", "mode", "poll_rate", "trigger"] as const) {
      if (raw[k] !== undefined)
        throw new DeclarativeConfigError(`${path}.${k}`, "only meaningful with a link");
    }
  }
  port.normalized = normalize(port, raw);
  return port;
}

/** The PV as 2.7.9's REST shows it: raw keys plus the defaults filled in for its type. */
function normalize(p: PortSpec, raw: Raw): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw, type: p.type, value: p.initial };
  if (p.type === "float")
    Object.assign(out, { unit: p.unit, prec: p.prec, low: p.low, high: p.high });
  if (p.type === "bool") Object.assign(out, { znam: p.znam, onam: p.onam });
  if (p.link !== undefined) {
    Object.assign(out, { link: p.link, link_mode: p.linkMode, trigger: p.trigger });
    if (p.pollRate !== undefined) out.poll_rate = p.pollRate;
  }
  if (p.bufferSize > 0) out.buffer_size = p.bufferSize;
  if (p.latch) {
    out.latch = true;
    if (p.latchDir !== "rise") out.latch_dir = p.latchDir;
  }
  if (p.alarmOn) out.alarm_on = p.alarmOn === 2 ? "MAJOR" : "MINOR";
  return out;
}

/** `arguments` merged over the legacy `pvs` (arguments wins per name), as 2.7.9 does. */
function parsePorts(cfg: Raw): PortSpec[] {
  const byName = new Map<string, PortSpec>();
  for (const section of ["pvs", "arguments"] as const) {
    const sec = cfg[section];
    if (sec === undefined || sec === null) continue;
    if (!isMap(sec))
      throw new DeclarativeConfigError(section, "expected a mapping with inputs and/or outputs");
    for (const [dirKey, direction] of [
      ["inputs", "input"],
      ["outputs", "output"],
    ] as const) {
      const m = sec[dirKey];
      if (m === undefined || m === null) continue;
      if (!isMap(m))
        throw new DeclarativeConfigError(
          `${section}.${dirKey}`,
          "expected a mapping of PV name to definition",
        );
      for (const [name, raw] of Object.entries(m)) {
        if (byName.size >= MAX_PORTS && !byName.has(name)) {
          throw new DeclarativeConfigError(`${section}.${dirKey}`, `more than ${MAX_PORTS} PVs`);
        }
        byName.delete(name);
        byName.set(name, parsePort(name, raw, direction, `${section}.${dirKey}.${name}`));
      }
    }
    for (const k of Object.keys(sec)) {
      if (k !== "inputs" && k !== "outputs")
        throw new DeclarativeConfigError(`${section}.${k}`, "expected inputs or outputs");
    }
  }
  return [...byName.values()];
}

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
