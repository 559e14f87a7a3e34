/**
 * The declared PVs of a declarative config (2.7.9's `arguments`, or the legacy `pvs`): names,
 * types, links and latches checked field by field, plus the PV as 2.7.9's REST shows it.
 */
import { MAX_LIST } from "../expr/index.ts";
import type { PortSpec, PortType, PortValue } from "./spec.ts";
import { bool, DeclarativeConfigError, isMap, num, oneOf, type Raw, text } from "./spec-fields.ts";

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
/** Most PVs one declarative config may declare (as our own config format). */
export const MAX_PORTS = 4096;

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

/** The PV's name (pattern, not reserved) and that its definition is a mapping of known keys. */
function checkPortShape(name: string, raw: unknown, path: string): asserts raw is Raw {
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
}

/** `link` and its `link_mode` (or the alias `mode`); absent link = an unwired PV. */
function portLink(raw: Raw, path: string): Pick<PortSpec, "link" | "linkMode"> {
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
  return { ...(link !== undefined ? { link } : {}), linkMode };
}

function parsePort(
  name: string,
  raw: unknown,
  direction: "input" | "output",
  path: string,
): PortSpec {
  checkPortShape(name, raw, path);
  const type = oneOf(
    raw.type,
    `${path}.type`,
    { float: "float", int: "int", string: "string", bool: "bool" },
    "float",
  );
  const { link, linkMode } = portLink(raw, path);
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
export function parsePorts(cfg: Raw): PortSpec[] {
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
