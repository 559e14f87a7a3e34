/**
 * One declared PV of a config.yaml turned into a PV definition: the checks the schema cannot
 * express (a field valid for this type, limits in order, states unique, a value that fits).
 */
import { show } from "../common/text.ts";
import {
  MAX_ENUM_STATES,
  MAX_ENUM_STRING_BYTES,
  MAX_STRING_BYTES,
  MAX_UNITS_BYTES,
} from "../pv/pv.ts";
import type { PvKind, PvMeta, PvSpec, PvValue, Severity } from "../pv/types.ts";
import {
  MAX_ARRAY_COUNT,
  PluginConfigError,
  type PvDef,
  type PvTypeName,
  type PvYaml,
  SEVERITY_CODE,
} from "./config-schema.ts";

const encoder = new TextEncoder();
const byteLen = (s: string): number => encoder.encode(s).length;

interface TypeInfo {
  kind: PvKind;
  array: boolean;
}

/** What each config.yaml type becomes: the PV kind, and whether it is an array. */
const TYPE_INFO: Record<PvTypeName, TypeInfo> = {
  float: { kind: "double", array: false },
  int: { kind: "long", array: false },
  string: { kind: "string", array: false },
  bool: { kind: "enum", array: false },
  enum: { kind: "enum", array: false },
  char: { kind: "char", array: false },
  "float[]": { kind: "double", array: true },
  "int[]": { kind: "long", array: true },
  "char[]": { kind: "char", array: true },
};

// Which optional keys make sense for which type: a key outside its type is refused (e.g. `znam`
// on a float) because it would silently do nothing.
const NUMERIC_TYPES: PvTypeName[] = ["float", "int", "char", "float[]", "int[]", "char[]"];
const FIELD_TYPES: Record<string, PvTypeName[]> = {
  count: ["float", "int", "char", "float[]", "int[]", "char[]"],
  unit: NUMERIC_TYPES,
  prec: ["float", "float[]"],
  low: NUMERIC_TYPES,
  high: NUMERIC_TYPES,
  drvl: ["float", "int", "char"],
  drvh: ["float", "int", "char"],
  alarm: ["float", "int", "char"],
  mdel: ["float", "int", "char"],
  adel: ["float", "int", "char"],
  znam: ["bool"],
  onam: ["bool"],
  zsv: ["bool"],
  osv: ["bool"],
  states: ["enum"],
};

/** Makes the error of one field of the PV being built. */
type FieldError = (field: string, expected: string, detail?: string) => PluginConfigError;

/** Refuses a key outside its type (it would silently do nothing). */
function checkFieldsForType(y: PvYaml, t: PvTypeName, err: FieldError): void {
  for (const [field, types] of Object.entries(FIELD_TYPES)) {
    if ((y as Record<string, unknown>)[field] !== undefined && !types.includes(t)) {
      throw err(
        field,
        `no '${field}' for type ${t}`,
        `not valid for type ${t} (only for ${types.join(", ")})`,
      );
    }
  }
}

/** Description, units, precision, display and drive limits, deadbands. */
function displayMeta(y: PvYaml, meta: PvMeta, err: FieldError): void {
  if (y.desc !== undefined) meta.description = y.desc;
  if (y.unit !== undefined) {
    if (byteLen(y.unit) > MAX_UNITS_BYTES) {
      throw err("unit", `at most ${MAX_UNITS_BYTES} bytes`, `longer than ${MAX_UNITS_BYTES} bytes`);
    }
    meta.units = y.unit;
  }
  if (y.prec !== undefined) meta.precision = y.prec;
  if (y.low !== undefined) meta.displayLow = y.low;
  if (y.high !== undefined) meta.displayHigh = y.high;
  if (y.low !== undefined && y.high !== undefined && y.low > y.high) {
    throw err("low", `low <= high (${y.high})`, `display low ${y.low} is above high ${y.high}`);
  }
  if (y.drvl !== undefined) meta.controlLow = y.drvl;
  if (y.drvh !== undefined) meta.controlHigh = y.drvh;
  if (y.drvl !== undefined && y.drvh !== undefined && y.drvl > y.drvh) {
    throw err("drvl", `drvl <= drvh (${y.drvh})`, `drive low ${y.drvl} is above drvh ${y.drvh}`);
  }
  if (y.mdel !== undefined) meta.mdel = y.mdel;
  if (y.adel !== undefined) meta.adel = y.adel;
}

/** Alarm limits (in order lolo <= low <= high <= hihi), severities and hysteresis. */
function alarmMeta(a: NonNullable<PvYaml["alarm"]>, err: FieldError): NonNullable<PvMeta["alarm"]> {
  const order: [keyof typeof a, number | undefined][] = [
    ["lolo", a.lolo],
    ["low", a.low],
    ["high", a.high],
    ["hihi", a.hihi],
  ];
  let prev: [string, number] | null = null;
  for (const [k, v] of order) {
    if (v === undefined) continue;
    if (prev !== null && v < prev[1]) {
      throw err(
        `alarm.${String(k)}`,
        `alarm limits ordered lolo <= low <= high <= hihi`,
        `${v} is below alarm.${prev[0]} (${prev[1]}); expected lolo <= low <= high <= hihi`,
      );
    }
    prev = [String(k), v];
  }
  return {
    ...(a.hihi !== undefined ? { hihi: a.hihi } : {}),
    ...(a.high !== undefined ? { high: a.high } : {}),
    ...(a.low !== undefined ? { low: a.low } : {}),
    ...(a.lolo !== undefined ? { lolo: a.lolo } : {}),
    ...(a.hhsv !== undefined ? { hhsv: SEVERITY_CODE[a.hhsv] } : {}),
    ...(a.hsv !== undefined ? { hsv: SEVERITY_CODE[a.hsv] } : {}),
    ...(a.lsv !== undefined ? { lsv: SEVERITY_CODE[a.lsv] } : {}),
    ...(a.llsv !== undefined ? { llsv: SEVERITY_CODE[a.llsv] } : {}),
    ...(a.hyst !== undefined ? { hyst: a.hyst } : {}),
  };
}

/** States (and their severities) of a bool or an enum. */
function statesMeta(y: PvYaml, t: PvTypeName, meta: PvMeta, err: FieldError): void {
  if (t === "bool") {
    const states = [y.znam ?? "0", y.onam ?? "1"];
    states.forEach((s, i) => {
      if (byteLen(s) > MAX_ENUM_STRING_BYTES) {
        throw err(i === 0 ? "znam" : "onam", `at most ${MAX_ENUM_STRING_BYTES} bytes`);
      }
    });
    meta.states = states;
    if (y.zsv !== undefined || y.osv !== undefined) {
      meta.stateSeverity = [SEVERITY_CODE[y.zsv ?? "NO_ALARM"], SEVERITY_CODE[y.osv ?? "NO_ALARM"]];
    }
  }
  if (t !== "enum") return;
  if (y.states === undefined) {
    throw err(
      "states",
      `a list of 1..${MAX_ENUM_STATES} states`,
      "missing; type enum needs `states`",
    );
  }
  const names: string[] = [];
  const sev: Severity[] = [];
  y.states.forEach((s, i) => {
    const n = typeof s === "string" ? s : s.name;
    if (byteLen(n) > MAX_ENUM_STRING_BYTES) {
      throw err(`states[${i}]`, `a state name of at most ${MAX_ENUM_STRING_BYTES} bytes`);
    }
    if (names.includes(n)) {
      throw err(`states[${i}]`, "unique state names", `duplicate state name '${n}'`);
    }
    names.push(n);
    sev.push(typeof s === "string" ? 0 : SEVERITY_CODE[s.severity ?? "NO_ALARM"]);
  });
  meta.states = names;
  if (sev.some((s) => s !== 0)) meta.stateSeverity = sev;
}

/** Element count: `count`, else the length of a list `value` for an array type. */
function elementCount(y: PvYaml, t: PvTypeName, array: boolean, err: FieldError): number {
  let count = y.count ?? 1;
  if (array && y.count === undefined) {
    if (Array.isArray(y.value) && y.value.length > 0) count = y.value.length;
    else if (t === "char[]" && typeof y.value === "string" && y.value !== "") {
      count = byteLen(y.value) + 1;
    } else {
      throw err(
        "count",
        `an integer 1..${MAX_ARRAY_COUNT}`,
        `missing; type ${t} needs \`count\` (the maximum number of elements) or a non-empty list \`value\``,
      );
    }
  }
  if (count > MAX_ARRAY_COUNT) {
    throw err("count", `an integer 1..${MAX_ARRAY_COUNT}`, `array too large (${count} elements)`);
  }
  return count;
}

/** A default outside the drive limits would make the PV refuse its own restored value. */
function checkWithinDrive(initial: number, meta: PvMeta, err: FieldError): void {
  const lo = meta.controlLow;
  const hi = meta.controlHigh;
  if ((lo !== undefined && initial < lo) || (hi !== undefined && initial > hi)) {
    throw err(
      "value",
      `a value within drvl..drvh`,
      `${initial} is outside the drive limits ${lo ?? "-inf"}..${hi ?? "+inf"}`,
    );
  }
}

/** The PV definition of declared PV `name` (`base` is its dotted path in the file). */
export function buildPvDef(
  file: string,
  base: string,
  name: string,
  y: PvYaml,
  direction: "input" | "output",
): PvDef {
  const err: FieldError = (field, expected, detail) =>
    new PluginConfigError(file, field === "" ? base : `${base}.${field}`, expected, detail);
  const t = y.type as PvTypeName;
  checkFieldsForType(y, t, err);
  const info = TYPE_INFO[t];
  const meta: PvMeta = {};
  displayMeta(y, meta, err);
  if (y.alarm !== undefined) meta.alarm = alarmMeta(y.alarm, err);
  statesMeta(y, t, meta, err);
  const count = elementCount(y, t, info.array, err);
  const isArray = info.array || count > 1;
  const spec: Omit<PvSpec, "name"> = { kind: info.kind, writable: direction === "input", meta };
  if (count !== 1) spec.count = count;
  if (y.value !== undefined) spec.initial = initialValue(y.value, t, isArray, count, meta, err);
  if (
    typeof spec.initial === "number" &&
    !isArray &&
    (info.kind === "double" || info.kind === "long")
  ) {
    checkWithinDrive(spec.initial, meta, err);
  }
  return { name, direction, spec, autosave: y.autosave ?? direction === "input" };
}

function initialValue(
  v: unknown,
  t: PvTypeName,
  isArray: boolean,
  count: number,
  meta: PvMeta,
  err: (field: string, expected: string, detail?: string) => PluginConfigError,
): PvValue {
  const bad = (expected: string): PluginConfigError =>
    err("value", expected, `expected ${expected}, got ${show(v)}`);
  if (t === "string") {
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    if (typeof v !== "string") throw bad("a string");
    if (byteLen(v) > MAX_STRING_BYTES) throw bad(`a string of at most ${MAX_STRING_BYTES} bytes`);
    return v;
  }
  if (t === "bool" || t === "enum") {
    const states = meta.states ?? [];
    const expected = `a state index 0..${states.length - 1} or one of ${states.map((s) => `'${s}'`).join(", ")}`;
    if (t === "bool" && typeof v === "boolean") return v ? 1 : 0;
    if (typeof v === "string") {
      const i = states.indexOf(v);
      if (i >= 0) return i;
      throw bad(expected);
    }
    if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < states.length) return v;
    throw bad(expected);
  }
  const kind = TYPE_INFO[t].kind;
  const checkNum = (x: unknown, where: string): number => {
    if (typeof x !== "number" || Number.isNaN(x)) {
      throw err(where, "a number", `expected a number, got ${show(x)}`);
    }
    if (kind === "long" && (!Number.isInteger(x) || x < -2147483648 || x > 2147483647)) {
      throw err(where, "a 32-bit integer", `expected a 32-bit integer, got ${x}`);
    }
    if (kind === "char" && (!Number.isInteger(x) || x < 0 || x > 255)) {
      throw err(where, "an integer 0..255", `expected an integer 0..255, got ${x}`);
    }
    return x;
  };
  if (!isArray) return checkNum(v, "value");
  if (kind === "char" && typeof v === "string") {
    if (byteLen(v) + 1 > count) {
      throw bad(`a string of at most ${count - 1} bytes (count ${count} includes the NUL)`);
    }
    return v; // Pv.normalize turns a string into UTF-8 bytes plus NUL
  }
  const list = Array.isArray(v) ? v : [v];
  if (list.length > count) {
    throw bad(`a list of at most ${count} elements (count)`);
  }
  const nums = list.map((x, i) => checkNum(x, `value[${i}]`));
  if (kind === "double") return Float64Array.from(nums);
  if (kind === "long") return Int32Array.from(nums);
  return Uint8Array.from(nums);
}
