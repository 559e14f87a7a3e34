/**
 * A plugin's `config.yaml`: its default parameters and the PVs it declares. The TypeBox schema below
 * is the single source of truth: it validates files (errors name the file, the dotted field path and
 * what was expected) and generates `schema/plugin-config.schema.json` for editors
 * (`bun scripts/gen-schema.ts`). Checks a JSON Schema cannot express (value fits the type, field
 * valid for this type, limits ordered, names not clashing) run after the schema.
 *
 * Meaning of the seed's fields is kept: `low`/`high` are DISPLAY limits (LOPR/HOPR). Alarm limits
 * live in a nested `alarm:` mapping so they can never be mistaken for them.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { type Static, Type } from "@sinclair/typebox";
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler";
import { Value, type ValueError } from "@sinclair/typebox/value";
import { JOB_STATES, TASK_STATES } from "../common/names.ts";
import { show, suggest } from "../common/text.ts";
import { parseYamlText } from "../common/yaml.ts";
import {
  MAX_ENUM_STATES,
  MAX_ENUM_STRING_BYTES,
  MAX_STRING_BYTES,
  MAX_UNITS_BYTES,
} from "../pv/pv.ts";
import type { PvKind, PvMeta, PvSpec, PvValue, Severity } from "../pv/types.ts";

/** A PV declared by a plugin (short name, without the plugin prefix). */
export interface PvDef {
  name: string;
  direction: "input" | "output";
  spec: Omit<PvSpec, "name">;
  /** Persist the value across restarts (default: inputs yes, outputs no). */
  autosave: boolean;
}

/** A parsed, validated config.yaml. */
export interface PluginConfig {
  parameters: Record<string, unknown>;
  pvs: PvDef[];
  /** The file it came from; null when the plugin has none. */
  file: string | null;
}

/** Invalid config.yaml: names the file, the dotted field path and what was expected. */
export class PluginConfigError extends Error {
  constructor(
    readonly file: string,
    readonly path: string,
    readonly expected: string,
    detail?: string,
  ) {
    super(
      `${file}: ${path === "" ? "" : `${path}: `}${detail ?? `expected ${expected}`}`.replace(
        /: $/,
        "",
      ),
    );
    this.name = "PluginConfigError";
  }
}

/** Largest config.yaml accepted. */
export const MAX_PLUGIN_CONFIG_BYTES = 256 * 1024;
/** Most PVs one config.yaml may declare. */
export const MAX_DECLARED_PVS = 4096;
/** Largest array PV (elements) a config.yaml may declare. */
export const MAX_ARRAY_COUNT = 1 << 22;
/** Longest DESC (the record field holds 40 characters plus NUL). */
export const MAX_DESC_CHARS = 40;
/** Longest PV short name a plugin may declare. */
export const MAX_PV_SHORT_NAME = 60;
/** PV short names: EPICS record-name characters (no '.', the field separator), not starting with a symbol. */
export const PV_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_\-+:[\]<>;]{0,59}$/;
/** Shortest `interval` accepted (seconds). */
export const MIN_INTERVAL = 0.001;
/** Longest `interval` accepted (seconds): one week. */
export const MAX_INTERVAL = 7 * 24 * 3600;

// -----------------------------------------------------------------------------------------------
// Schema. `x-expected` is the phrase used in error messages (stripped from the generated JSON
// Schema); `description` is what editors show.

const SEVERITIES = ["NO_ALARM", "MINOR", "MAJOR", "INVALID"] as const;
const SEVERITY_CODE: Record<(typeof SEVERITIES)[number], Severity> = {
  NO_ALARM: 0,
  MINOR: 1,
  MAJOR: 2,
  INVALID: 3,
};

const PV_TYPES = [
  "float",
  "int",
  "string",
  "bool",
  "enum",
  "char",
  "float[]",
  "int[]",
  "char[]",
] as const;
type PvTypeName = (typeof PV_TYPES)[number];

const SeveritySchema = Type.Union(
  SEVERITIES.map((s) => Type.Literal(s)),
  {
    "x-expected": `one of ${SEVERITIES.join(", ")}`,
    description: "Alarm severity",
  },
);

const num = (description: string) =>
  Type.Optional(Type.Number({ description, "x-expected": "a number" }));

const AlarmSchema = Type.Object(
  {
    hihi: num("HIHI alarm limit: at or above it the PV is in HIHI alarm (severity hhsv)"),
    high: num("HIGH alarm limit (severity hsv)"),
    low: num("LOW alarm limit (severity lsv)"),
    lolo: num("LOLO alarm limit: at or below it the PV is in LOLO alarm (severity llsv)"),
    hhsv: Type.Optional(SeveritySchema),
    hsv: Type.Optional(SeveritySchema),
    lsv: Type.Optional(SeveritySchema),
    llsv: Type.Optional(SeveritySchema),
    hyst: Type.Optional(
      Type.Number({
        minimum: 0,
        description: "Alarm hysteresis (HYST): an alarm clears only this far back inside the limit",
        "x-expected": "a number >= 0",
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      "Alarm limits and severities, like the ai/ao record fields (default severities: hihi/lolo MAJOR, high/low MINOR)",
    "x-expected": "a mapping of alarm limits (hihi, high, low, lolo, hhsv, hsv, lsv, llsv, hyst)",
  },
);

const StateSchema = Type.Union(
  [
    Type.String({ maxLength: MAX_ENUM_STRING_BYTES }),
    Type.Object(
      {
        name: Type.String({
          maxLength: MAX_ENUM_STRING_BYTES,
          "x-expected": `a state name of at most ${MAX_ENUM_STRING_BYTES} characters`,
        }),
        severity: Type.Optional(SeveritySchema),
      },
      { additionalProperties: false },
    ),
  ],
  {
    "x-expected": `a state name (at most ${MAX_ENUM_STRING_BYTES} characters) or {name, severity}`,
  },
);

const PvSchema = Type.Object(
  {
    type: Type.Union(
      PV_TYPES.map((t) => Type.Literal(t)),
      {
        description:
          "Value type: float (DBR_DOUBLE), int (DBR_LONG), string (40-char DBR_STRING), bool (2-state enum), enum (up to 16 states), char; a [] suffix makes an array (waveform) of `count` elements",
        "x-expected": `one of ${PV_TYPES.join(", ")}`,
      },
    ),
    value: Type.Optional(
      Type.Unknown({
        description:
          "Initial value: a number, a string, true/false (bool), a state name or index (bool/enum), a list (arrays) or a string (char[])",
      }),
    ),
    count: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_ARRAY_COUNT,
        description: "Maximum number of elements (NELM); > 1 makes float/int/char an array",
        "x-expected": `an integer 1..${MAX_ARRAY_COUNT}`,
      }),
    ),
    unit: Type.Optional(
      Type.String({
        maxLength: MAX_UNITS_BYTES,
        description: "Engineering units (EGU), at most 7 characters",
        "x-expected": `a string of at most ${MAX_UNITS_BYTES} characters`,
      }),
    ),
    prec: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 17,
        description: "Digits after the decimal point (PREC), float only",
        "x-expected": "an integer 0..17",
      }),
    ),
    low: num("Display low limit (LOPR), as in the original iocmng"),
    high: num("Display high limit (HOPR), as in the original iocmng"),
    drvl: num("Drive low limit (DRVL): a client write below it is refused"),
    drvh: num("Drive high limit (DRVH): a client write above it is refused"),
    desc: Type.Optional(
      Type.String({
        maxLength: MAX_DESC_CHARS,
        description: "Description (DESC), at most 40 characters",
        "x-expected": `a string of at most ${MAX_DESC_CHARS} characters`,
      }),
    ),
    alarm: Type.Optional(AlarmSchema),
    mdel: num(
      "Monitor deadband (MDEL): DBE_VALUE posts only when the change exceeds it; -1 = every update",
    ),
    adel: num(
      "Archive deadband (ADEL): DBE_LOG posts only when the change exceeds it; -1 = every update",
    ),
    znam: Type.Optional(
      Type.String({
        maxLength: MAX_ENUM_STRING_BYTES,
        description: "Name of state 0 (bool only; default '0')",
        "x-expected": `a string of at most ${MAX_ENUM_STRING_BYTES} characters`,
      }),
    ),
    onam: Type.Optional(
      Type.String({
        maxLength: MAX_ENUM_STRING_BYTES,
        description: "Name of state 1 (bool only; default '1')",
        "x-expected": `a string of at most ${MAX_ENUM_STRING_BYTES} characters`,
      }),
    ),
    zsv: Type.Optional(SeveritySchema),
    osv: Type.Optional(SeveritySchema),
    states: Type.Optional(
      Type.Array(StateSchema, {
        minItems: 1,
        maxItems: MAX_ENUM_STATES,
        description: "Enum states (enum only), at most 16: a name or {name, severity}",
        "x-expected": `a list of 1..${MAX_ENUM_STATES} states`,
      }),
    ),
    autosave: Type.Optional(
      Type.Boolean({
        description:
          "Save the value and restore it at the next start (default: true for inputs, false for outputs)",
        "x-expected": "true or false",
      }),
    ),
  },
  {
    additionalProperties: false,
    description: "One PV; its full name is <plugin prefix>:<key>",
    "x-expected": "a mapping describing a PV (at least `type`)",
  },
);

const PvMapSchema = Type.Union(
  [
    Type.Null(),
    Type.Record(Type.String({ pattern: PV_NAME_RE.source }), PvSchema, {
      "x-expected": "a mapping of PV name to PV definition",
    }),
  ],
  { "x-expected": "a mapping of PV name to PV definition" },
);

/** The TypeBox schema of a plugin's config.yaml. */
export const PluginConfigSchema = Type.Object(
  {
    parameters: Type.Optional(
      Type.Union(
        [
          Type.Null(),
          Type.Object(
            {
              mode: Type.Optional(
                Type.Union([Type.Literal("continuous"), Type.Literal("triggered")], {
                  description:
                    "Task mode: continuous (execute() every `interval` s) or triggered (execute() on a write of 1 to RUN)",
                  "x-expected": "'continuous' or 'triggered'",
                }),
              ),
              interval: Type.Optional(
                Type.Number({
                  minimum: MIN_INTERVAL,
                  maximum: MAX_INTERVAL,
                  description: "Seconds between execute() calls in continuous mode (default 1.0)",
                  "x-expected": `a number of seconds ${MIN_INTERVAL}..${MAX_INTERVAL}`,
                }),
              ),
            },
            {
              additionalProperties: true,
              description:
                "Parameters given to the plugin as `this.parameters`; REST/IOCMNG_CONFIG parameters override them",
              "x-expected": "a mapping of parameter names to values",
            },
          ),
        ],
        { "x-expected": "a mapping of parameter names to values" },
      ),
    ),
    pvs: Type.Optional(
      Type.Union(
        [
          Type.Null(),
          Type.Object(
            {
              inputs: Type.Optional(PvMapSchema),
              outputs: Type.Optional(PvMapSchema),
            },
            {
              additionalProperties: false,
              description:
                "inputs: writable by CA clients (operator → plugin); outputs: read-only to clients (plugin → operator)",
              "x-expected": "a mapping with `inputs` and/or `outputs`",
            },
          ),
        ],
        { "x-expected": "a mapping with `inputs` and/or `outputs`" },
      ),
    ),
  },
  {
    additionalProperties: false,
    title: "iocmng plugin config.yaml",
    description: "Parameters and PVs of an iocmng task or job plugin",
    "x-expected": "a mapping with `parameters` and/or `pvs`",
  },
);

type PvYaml = Static<typeof PvSchema>;

/** The JSON Schema document written to schema/plugin-config.schema.json. */
export function pluginConfigJsonSchema(): Record<string, unknown> {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v === null || typeof v !== "object") return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (k !== "x-expected") out[k] = strip(x);
    return out;
  };
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    ...(strip(JSON.parse(JSON.stringify(PluginConfigSchema))) as Record<string, unknown>),
  };
}

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

// -----------------------------------------------------------------------------------------------
// Parsing.

const PV_KEYS = Object.keys(PvSchema.properties);
const ALARM_KEYS = Object.keys(AlarmSchema.properties);
const TOP_KEYS = ["parameters", "pvs"];
const PVS_KEYS = ["inputs", "outputs"];

function dotted(path: string): string {
  // TypeBox paths are JSON pointers ("/pvs/inputs/SET/prec"); show them as "pvs.inputs.SET.prec".
  return path
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : p))
    .join(".")
    .replace(/\.\[/g, "[");
}

// Keys allowed in the mapping at `parent` (the path without the unknown key itself).
function keysFor(parent: string[]): string[] {
  if (parent.length === 0) return TOP_KEYS;
  if (parent.length === 1 && parent[0] === "pvs") return PVS_KEYS;
  if (parent.length === 3 && parent[0] === "pvs") return PV_KEYS;
  if (parent.length === 4 && parent[3] === "alarm") return ALARM_KEYS;
  if (parent.length === 5 && parent[3] === "states") return ["name", "severity"];
  return [];
}

// Picks the most useful error of a list: an unknown key (the likeliest typo) first.
function pickError(errors: ValueError[]): ValueError | undefined {
  return errors.find((e) => e.message === "Unexpected property") ?? errors[0];
}

// TypeBox reports a failed union as one vague error; descend into the variant that matched the
// value's shape (its errors lie deeper than the union itself) to report the real problem.
function refineError(e: ValueError, depth = 0): ValueError {
  if (e.errors.length === 0 || depth > 8) return e;
  const depthOf = (p: string): number => p.split("/").length;
  for (const it of e.errors) {
    const list = [...it];
    const deeper = list.filter((x) => depthOf(x.path) > depthOf(e.path));
    const best = pickError(deeper);
    if (best !== undefined) return refineError(best, depth + 1);
  }
  return e;
}

// Compiled once: the fast path for valid files. Errors are only enumerated when Check fails.
let compiled: TypeCheck<typeof PluginConfigSchema> | null = null;

function schemaError(file: string, data: unknown): PluginConfigError | null {
  compiled ??= TypeCompiler.Compile(PluginConfigSchema);
  if (compiled.Check(data)) return null;
  const picked = pickError([...Value.Errors(PluginConfigSchema, data)]);
  if (picked === undefined) return null;
  const chosen = refineError(picked);
  const path = dotted(chosen.path);
  if (chosen.message === "Unexpected property") {
    const segs = chosen.path.split("/").slice(1);
    const key = segs[segs.length - 1] ?? "";
    const known = keysFor(segs.slice(0, -1));
    const hint = suggest(key, known);
    if (segs.length === 4 && segs[0] === "pvs" && (key === "hihi" || key === "lolo")) {
      return new PluginConfigError(
        file,
        path,
        "alarm limits inside an `alarm:` mapping",
        `unknown key; alarm limits go in a nested mapping, e.g. 'alarm: {${key}: …}' (low/high are display limits)`,
      );
    }
    return new PluginConfigError(
      file,
      path,
      `one of ${known.join(", ")}`,
      `unknown key${hint ? ` (did you mean '${hint}'?)` : ""}; expected one of ${known.join(", ")}`,
    );
  }
  const schema = chosen.schema as { "x-expected"?: string };
  const expected = schema["x-expected"] ?? chosen.message.replace(/^Expected /, "");
  if (chosen.message.startsWith("Expected required property")) {
    return new PluginConfigError(file, path, expected, `missing; expected ${expected}`);
  }
  return new PluginConfigError(
    file,
    path,
    expected,
    `expected ${expected}, got ${show(chosen.value)}`,
  );
}

const encoder = new TextEncoder();
const byteLen = (s: string): number => encoder.encode(s).length;

interface TypeInfo {
  kind: PvKind;
  array: boolean;
}

function typeInfo(t: PvTypeName): TypeInfo {
  switch (t) {
    case "float":
      return { kind: "double", array: false };
    case "int":
      return { kind: "long", array: false };
    case "string":
      return { kind: "string", array: false };
    case "bool":
    case "enum":
      return { kind: "enum", array: false };
    case "char":
      return { kind: "char", array: false };
    case "float[]":
      return { kind: "double", array: true };
    case "int[]":
      return { kind: "long", array: true };
    case "char[]":
      return { kind: "char", array: true };
  }
}

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

function buildPvDef(
  file: string,
  base: string,
  name: string,
  y: PvYaml,
  direction: "input" | "output",
): PvDef {
  const err = (field: string, expected: string, detail?: string): PluginConfigError =>
    new PluginConfigError(file, field === "" ? base : `${base}.${field}`, expected, detail);
  const t = y.type as PvTypeName;
  for (const [field, types] of Object.entries(FIELD_TYPES)) {
    if ((y as Record<string, unknown>)[field] !== undefined && !types.includes(t)) {
      throw err(
        field,
        `no '${field}' for type ${t}`,
        `not valid for type ${t} (only for ${types.join(", ")})`,
      );
    }
  }
  const info = typeInfo(t);
  const meta: PvMeta = {};
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
  if (y.alarm !== undefined) {
    const a = y.alarm;
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
    meta.alarm = {
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

  // States of bool and enum.
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
  if (t === "enum") {
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

  // Element count.
  let count = y.count ?? 1;
  const isArray = info.array || count > 1;
  if (info.array && y.count === undefined) {
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

  const spec: Omit<PvSpec, "name"> = {
    kind: info.kind,
    writable: direction === "input",
    meta,
  };
  if (count !== 1) spec.count = count;
  if (y.value !== undefined) spec.initial = initialValue(y.value, t, isArray, count, meta, err);
  if (
    spec.initial !== undefined &&
    typeof spec.initial === "number" &&
    !isArray &&
    (info.kind === "double" || info.kind === "long")
  ) {
    // A default outside the drive limits would make the PV refuse its own restored value.
    const lo = meta.controlLow;
    const hi = meta.controlHigh;
    if ((lo !== undefined && spec.initial < lo) || (hi !== undefined && spec.initial > hi)) {
      throw err(
        "value",
        `a value within drvl..drvh`,
        `${spec.initial} is outside the drive limits ${lo ?? "-inf"}..${hi ?? "+inf"}`,
      );
    }
  }
  return {
    name,
    direction,
    spec,
    autosave: y.autosave ?? direction === "input",
  };
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
  const kind = typeInfo(t).kind;
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

/**
 * Parses and validates the text of a config.yaml. `file` names it in errors; `kind` decides which
 * default PV names are reserved. Throws PluginConfigError.
 */
export function parsePluginConfig(text: string, file: string, kind: "task" | "job"): PluginConfig {
  const r = parseYamlText(text, { maxBytes: MAX_PLUGIN_CONFIG_BYTES });
  if (!r.ok) throw new PluginConfigError(file, r.path, r.expected, r.message);
  const data = r.value ?? {};
  const se = schemaError(file, data);
  if (se !== null) throw se;
  const doc = data as Static<typeof PluginConfigSchema>;
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
  return { parameters, pvs, file };
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
): { parameters: Record<string, unknown>; mode: "continuous" | "triggered"; interval: number } {
  const parameters = { ...cfg.parameters, ...(overrides ?? {}) };
  // Name the source of a bad value: the request's parameters or the plugin's config.yaml.
  const fileFor = (key: string): string =>
    overrides !== undefined && Object.hasOwn(overrides, key)
      ? "request parameters"
      : (cfg.file ?? "config.yaml");
  const { mode, interval } = resolveParametersIn(fileFor, parameters, "parameters");
  return { parameters, mode, interval };
}
